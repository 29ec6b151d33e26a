//go:build wasip1

// Command sigv4 is a cordon plugin that signs requests to AWS with Signature Version 4
// (header form), so that the sandboxed command can use AWS with placeholder credentials while
// the real keys stay in cordon. Whatever signature the client made is replaced.
//
// The signing key is derived inside the host: the plugin asks for a key made from
// "AWS4"+secret and for HMACs with it (key handles), and never sees the secret access key or
// any intermediate key. The access key id goes into the Authorization header through a
// template, so the plugin never sees it either.
//
// Config (all optional):
//
//	region                  region to sign for; default: from the client's signature, else
//	                        from the host name, else us-east-1
//	service                 service to sign for; default: likewise (e.g. "s3", "sts")
//	access_key_secret       secret holding the access key id (default "aws_access_key_id")
//	secret_key_secret       secret holding the secret access key (default "aws_secret_access_key")
//	session_token_secret    secret holding a session token, for temporary credentials
//	                        (default: none; the client's X-Amz-Security-Token is removed)
//	unsigned_payload        "true": for S3, sign a body larger than the host's body limit as
//	                        UNSIGNED-PAYLOAD instead of failing
//
// Limits: the payload must be hashable (the client's X-Amz-Content-Sha256 is used if present,
// else the host hashes the body up to its limit); S3's streaming chunk signatures
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) cannot be re-signed and fail the request.
package main

import (
	"errors"
	"sort"
	"strings"

	"github.com/cordonsh/cordon/plugins/sdk"
)

const (
	algorithm = "AWS4-HMAC-SHA256"
)

var (
	cfgRegion      = sdk.ConfigOr("region", "")
	cfgService     = sdk.ConfigOr("service", "")
	accessKeyName  = sdk.ConfigOr("access_key_secret", "aws_access_key_id")
	secretKeyName  = sdk.ConfigOr("secret_key_secret", "aws_secret_access_key")
	sessionName    = sdk.ConfigOr("session_token_secret", "")
	allowUnsigned  = sdk.ConfigOr("unsigned_payload", "") == "true"
	errStreaming   = errors.New("sigv4: streaming (chunk-signed) S3 uploads cannot be re-signed; configure the client to send a payload hash or UNSIGNED-PAYLOAD")
	errPayloadSize = errors.New("sigv4: the request body is larger than the host's limit and cannot be hashed")
)

// Headers never signed: they change hop by hop, or are replaced by the signature itself.
var unsigned = map[string]bool{
	"authorization": true, "user-agent": true, "x-amzn-trace-id": true, "expect": true,
	"connection": true, "keep-alive": true, "proxy-authorization": true, "proxy-connection": true,
	"te": true, "trailer": true, "transfer-encoding": true, "upgrade": true, "content-length": true,
}

func init() { sdk.Handle(sign) }

func main() {}

func sign(r *sdk.Request) error {
	amzDate := r.Header("X-Amz-Date")
	if !isAmzDate(amzDate) {
		amzDate = formatAmzDate(sdk.UnixNano() / 1e9)
	}
	if err := r.SetHeader("X-Amz-Date", amzDate); err != nil {
		return err
	}
	region, service := scopeOf(r)

	// Replace whatever credentials the client used.
	clientPayload := r.Header("X-Amz-Content-Sha256")
	_ = r.RemoveHeader("Authorization")
	_ = r.RemoveHeader("X-Amz-Security-Token")
	if sessionName != "" {
		if err := r.SetHeaderFromSecret("X-Amz-Security-Token", sessionName, "{secret}"); err != nil {
			return errors.New("sigv4: cannot set the session token: " + err.Error())
		}
	}

	payload, err := payloadHash(r, clientPayload, service)
	if err != nil {
		return err
	}

	// The canonical request, as a template when the session token is one of its headers.
	var t sdk.Template
	t.Text(r.Method() + "\n" + canonicalURI(r.Path(), service == "s3") + "\n" + canonicalQuery(r.Query()) + "\n")
	var names []string
	for _, n := range r.HeaderNames() {
		if l := strings.ToLower(n); !unsigned[l] {
			names = append(names, l)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		t.Text(n + ":")
		if n == "x-amz-security-token" && sessionName != "" {
			t.Secret(sessionName)
		} else {
			t.Text(canonicalValue(r.HeaderValues(n)))
		}
		t.Text("\n")
	}
	signedHeaders := strings.Join(names, ";")
	t.Text("\n" + signedHeaders + "\n" + payload)
	crHash, err := sdk.SHA256Template(&t)
	if err != nil {
		return errors.New("sigv4: hashing the canonical request: " + err.Error())
	}

	date := amzDate[:8]
	scope := date + "/" + region + "/" + service + "/aws4_request"
	stringToSign := algorithm + "\n" + amzDate + "\n" + scope + "\n" + hexString(crHash[:])

	// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request"),
	// all inside the host.
	key, err := sdk.KeyFromSecret(secretKeyName, "AWS4{secret}")
	for _, part := range []string{date, region, service, "aws4_request"} {
		if err != nil {
			break
		}
		key, err = key.Derive([]byte(part))
	}
	if err != nil {
		return errors.New("sigv4: deriving the signing key: " + err.Error())
	}
	sig, err := key.HMAC([]byte(stringToSign))
	if err != nil {
		return errors.New("sigv4: signing: " + err.Error())
	}

	var auth sdk.Template
	auth.Text(algorithm + " Credential=").Secret(accessKeyName).
		Text("/" + scope + ", SignedHeaders=" + signedHeaders + ", Signature=" + hexString(sig[:]))
	if err := r.SetHeaderTemplate("Authorization", &auth); err != nil {
		return errors.New("sigv4: setting Authorization: " + err.Error())
	}
	return nil
}

// payloadHash returns the hex SHA-256 of the body, the client's own payload hash for S3, or
// UNSIGNED-PAYLOAD where allowed.
func payloadHash(r *sdk.Request, client, service string) (string, error) {
	if strings.HasPrefix(client, "STREAMING-") {
		return "", errStreaming
	}
	if service == "s3" && client != "" {
		// S3 checks the body against this value, so a wrong one only hurts the client.
		return client, nil
	}
	sum, err := r.BodySHA256()
	hash := hexString(sum[:])
	switch {
	case err == nil:
	case errors.Is(err, sdk.ErrLimit) && service == "s3" && allowUnsigned:
		hash = "UNSIGNED-PAYLOAD"
	case errors.Is(err, sdk.ErrLimit):
		return "", errPayloadSize
	default:
		return "", errors.New("sigv4: hashing the body: " + err.Error())
	}
	if service == "s3" || client != "" {
		if err := r.SetHeader("X-Amz-Content-Sha256", hash); err != nil {
			return "", err
		}
	}
	return hash, nil
}

// scopeOf returns the region and service to sign for: the config, else the scope of the
// client's own signature, else what the host name says.
func scopeOf(r *sdk.Request) (region, service string) {
	region, service = cfgRegion, cfgService
	if region != "" && service != "" {
		return region, service
	}
	cr, cs := clientScope(r.Header("Authorization"))
	hr, hs := hostScope(r.Host())
	region = first(region, cr, hr, "us-east-1")
	service = first(service, cs, hs)
	return region, service
}

func first(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// clientScope reads region and service from "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...".
func clientScope(auth string) (region, service string) {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return "", ""
	}
	cred, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || !isToken(parts[2]) || !isToken(parts[3]) {
		return "", ""
	}
	return parts[2], parts[3]
}

func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// hostScope guesses region and service from an AWS host name: SERVICE.REGION.amazonaws.com,
// BUCKET.s3.REGION.amazonaws.com, s3.dualstack.REGION.amazonaws.com, s3-REGION.amazonaws.com,
// or SERVICE.amazonaws.com (global).
func hostScope(host string) (region, service string) {
	name, ok := strings.CutSuffix(host, ".amazonaws.com")
	if !ok {
		return "", ""
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if isRegion(l) {
			for j := i - 1; j >= 0 && service == ""; j-- {
				if labels[j] != "dualstack" {
					service = labels[j]
				}
			}
			return l, strings.TrimSuffix(service, "-fips")
		}
		if rest, ok := strings.CutPrefix(l, "s3-"); ok && isRegion(rest) {
			return rest, "s3"
		}
	}
	last := labels[len(labels)-1]
	if isToken(last) {
		return "", strings.TrimSuffix(last, "-fips")
	}
	return "", ""
}

// isRegion matches names such as "us-east-1", "eu-central-2", "us-gov-west-1".
func isRegion(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) < 3 || len(parts[0]) != 2 || parts[0][0] < 'a' || parts[0][0] > 'z' || parts[0][1] < 'a' || parts[0][1] > 'z' {
		return false
	}
	num := parts[len(parts)-1]
	if num == "" {
		return false
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return false
		}
	}
	return isToken(s)
}

// canonicalURI returns the canonical URI of an escaped request path. S3 signs the path as it
// is, encoded once; other services sign it normalized (no empty or dot segments) and encoded
// a second time.
func canonicalURI(path string, s3 bool) string {
	if path == "" {
		path = "/"
	}
	if s3 {
		return uriEncode(unescape(path), false)
	}
	var segs []string
	for _, s := range strings.Split(path, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	out := "/" + strings.Join(segs, "/")
	if len(segs) > 0 && strings.HasSuffix(path, "/") {
		out += "/"
	}
	return uriEncode(out, false)
}

// canonicalQuery sorts the query's parameters by name, then value, each URI-encoded.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var params []kv
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		params = append(params, kv{uriEncode(formUnescape(k), true), uriEncode(formUnescape(v), true)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	parts := make([]string, len(params))
	for i, p := range params {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// canonicalValue joins a header's values with "," after trimming each and collapsing runs of
// spaces.
func canonicalValue(vals []string) string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

// uriEncode percent-encodes every byte except the unreserved characters A-Z a-z 0-9 - _ . ~
// (and "/" unless encodeSlash), with upper-case hex, as SigV4 requires.
func uriEncode(s string, encodeSlash bool) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || c == '/' && !encodeSlash {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return b.String()
}

// unescape decodes %XX sequences; malformed ones are kept as they are.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

// formUnescape decodes a query component: "+" is a space, then %XX.
func formUnescape(s string) string { return unescape(strings.ReplaceAll(s, "+", " ")) }

// isAmzDate reports whether s has the form 20060102T150405Z. (Written out rather than with
// time.Parse, which would add half a megabyte of formatting code to the module.)
func isAmzDate(s string) bool {
	if len(s) != 16 || s[8] != 'T' || s[15] != 'Z' {
		return false
	}
	for i := 0; i < 15; i++ {
		if i != 8 && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}

// formatAmzDate formats Unix seconds as 20060102T150405Z (UTC). The civil date comes from
// the days since the epoch, as in Howard Hinnant's days-to-civil algorithm.
func formatAmzDate(unix int64) string {
	days, secs := unix/86400, unix%86400
	if secs < 0 {
		days, secs = days-1, secs+86400
	}
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	b := make([]byte, 0, 16)
	b = appendPadded(b, int(y), 4)
	b = appendPadded(b, int(m), 2)
	b = appendPadded(b, int(d), 2)
	b = append(b, 'T')
	b = appendPadded(b, int(secs/3600), 2)
	b = appendPadded(b, int(secs/60%60), 2)
	b = appendPadded(b, int(secs%60), 2)
	return string(append(b, 'Z'))
}

func appendPadded(b []byte, n, width int) []byte {
	d := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d...)
}

// hexString and unhex stand in for encoding/hex, which would pull fmt (and a megabyte) into
// the module.
func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
