//go:build !wasip1

package sdk

// Outside a wasip1 plugin there is no host: every host function reports codeNotPlugin.

func rawRequestMethod(*byte, uint32) int32            { return codeNotPlugin }
func rawRequestScheme(*byte, uint32) int32            { return codeNotPlugin }
func rawRequestHost(*byte, uint32) int32              { return codeNotPlugin }
func rawRequestPort() int32                           { return codeNotPlugin }
func rawRequestPath(*byte, uint32) int32              { return codeNotPlugin }
func rawRequestQuery(*byte, uint32) int32             { return codeNotPlugin }
func rawHeaderGet(string, *byte, uint32) int32        { return codeNotPlugin }
func rawHeaderNames(*byte, uint32) int32              { return codeNotPlugin }
func rawHeaderSet(string, string) int32               { return codeNotPlugin }
func rawHeaderAdd(string, string) int32               { return codeNotPlugin }
func rawHeaderRemove(string) int32                    { return codeNotPlugin }
func rawHeaderSetSecret(string, string, string) int32 { return codeNotPlugin }
func rawDeny(int32, string) int32                     { return codeNotPlugin }
func rawFail(string)                                  {}
func rawConfigGet(string, *byte, uint32) int32        { return codeNotPlugin }
func rawLog(int32, string)                            {}
func rawKeyFromSecret(string, string) int32           { return codeNotPlugin }
func rawKeyHMAC(int32, string) int32                  { return codeNotPlugin }
func rawHMAC(int32, string, *byte) int32              { return codeNotPlugin }
func rawSHA256Template(string, *byte) int32           { return codeNotPlugin }
func rawBodySHA256(*byte) int32                       { return codeNotPlugin }

func unixNano() int64 { return 0 }
