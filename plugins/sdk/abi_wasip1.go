//go:build wasip1

package sdk

// The exports. They are called by the host, not from Go (hence the lint directives).

//lint:ignore U1000 exported to the host by go:wasmexport
//go:wasmexport cordon_abi_version_1
func abiVersion1() {}

//lint:ignore U1000 exported to the host by go:wasmexport
//go:wasmexport cordon_on_request
func cordonOnRequest() int32 { return onRequest() }

// The host functions of ABI version 1. A string parameter is passed as (pointer, length) in
// this module's memory; a *byte is a pointer to a buffer.

//go:wasmimport cordon request_method
func rawRequestMethod(buf *byte, n uint32) int32

//go:wasmimport cordon request_scheme
func rawRequestScheme(buf *byte, n uint32) int32

//go:wasmimport cordon request_host
func rawRequestHost(buf *byte, n uint32) int32

//go:wasmimport cordon request_port
func rawRequestPort() int32

//go:wasmimport cordon request_path
func rawRequestPath(buf *byte, n uint32) int32

//go:wasmimport cordon request_query
func rawRequestQuery(buf *byte, n uint32) int32

//go:wasmimport cordon header_get
func rawHeaderGet(name string, buf *byte, n uint32) int32

//go:wasmimport cordon header_names
func rawHeaderNames(buf *byte, n uint32) int32

//go:wasmimport cordon header_set
func rawHeaderSet(name, value string) int32

//go:wasmimport cordon header_add
func rawHeaderAdd(name, value string) int32

//go:wasmimport cordon header_remove
func rawHeaderRemove(name string) int32

//go:wasmimport cordon header_set_secret
func rawHeaderSetSecret(name, secret, template string) int32

//go:wasmimport cordon deny
func rawDeny(status int32, reason string) int32

//go:wasmimport cordon fail
func rawFail(msg string)

//go:wasmimport cordon config_get
func rawConfigGet(key string, buf *byte, n uint32) int32

//go:wasmimport cordon log
func rawLog(level int32, msg string)

//go:wasmimport cordon key_from_secret
func rawKeyFromSecret(secret, template string) int32

//go:wasmimport cordon key_hmac_sha256
func rawKeyHMAC(key int32, data string) int32

//go:wasmimport cordon hmac_sha256
func rawHMAC(key int32, data string, out *byte) int32

//go:wasmimport cordon sha256_template
func rawSHA256Template(template string, out *byte) int32

//go:wasmimport cordon body_sha256
func rawBodySHA256(out *byte) int32

//go:wasmimport wasi_snapshot_preview1 clock_time_get
func wasiClockTimeGet(id uint32, precision uint64, out *uint64) uint32

func unixNano() int64 {
	var t uint64
	if wasiClockTimeGet(0, 1000, &t) != 0 { // clock 0 is the real-time clock
		return 0
	}
	return int64(t)
}
