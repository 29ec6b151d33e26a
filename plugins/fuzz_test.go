package plugins

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"", "Bearer {secret}", "{secret:a}{secret:b.c-d_e}", "{{}}", "{", "}", "{secret:}", "{secret", "a{{secret}}b", "{x}", "{secret:a b}"} {
		f.Add(s, "tok")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, tmpl, def string) {
		parts, err := parseTemplate(tmpl, def)
		if err != nil {
			return
		}
		// Re-encoding the parts gives a template that parses to the same parts.
		var b strings.Builder
		for _, p := range parts {
			if p.secret != "" {
				if !validSecretName(p.secret) {
					t.Fatalf("invalid secret name %q accepted from %q", p.secret, tmpl)
				}
				b.WriteString("{secret:" + p.secret + "}")
			} else {
				b.WriteString(escapeTemplate(p.text))
			}
		}
		again, err := parseTemplate(b.String(), "")
		if err != nil || !sameParts(mergeText(parts), again) {
			t.Fatalf("%q -> %q -> %v (%v)", tmpl, b.String(), again, err)
		}
		// Escaped text is never a placeholder.
		esc, err := parseTemplate(escapeTemplate(tmpl), def)
		if err != nil || (tmpl != "" && (len(esc) != 1 || esc[0].text != tmpl)) {
			t.Fatalf("escaped %q parses to %v (%v)", tmpl, esc, err)
		}
	})
}

func mergeText(parts []tmplPart) []tmplPart {
	var out []tmplPart
	for _, p := range parts {
		if p.secret == "" && len(out) > 0 && out[len(out)-1].secret == "" {
			out[len(out)-1].text += p.text
			continue
		}
		out = append(out, p)
	}
	return out
}

func sameParts(a, b []tmplPart) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The fuzzed host: one plugin, loaded once per process, whose instances the fuzzer borrows.
var (
	fuzzOnce   sync.Once
	fuzzPlugin *Plugin
	fuzzErr    error
)

const (
	fuzzCanary     = "fuzz-canary-Zq8vT3"
	fuzzProxyToken = "proxy-token-Hk2m"
)

func fuzzSetup() (*Plugin, error) {
	fuzzOnce.Do(func() {
		h, err := NewHost(HostConfig{NoDiskCache: true})
		if err != nil {
			fuzzErr = err
			return
		}
		m := newWmod()
		m.export("cordon_abi_version_1", m.fn(0, 0))
		m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
		fuzzPlugin, fuzzErr = h.Load(context.Background(), PluginConfig{
			Name: "fuzz", Wasm: m.bytes(), Hosts: patterns("api.example.com"),
			Secrets: map[string][]byte{"canary": []byte(fuzzCanary), "other": []byte("other-secret-value")},
			Config:  map[string]string{"k": "v"}, MaxBodyBytes: 64,
		})
	})
	return fuzzPlugin, fuzzErr
}

// fuzzProgram encodes host calls for FuzzHostCalls: memory contents, then per call one byte
// choosing the function and three bytes per parameter (a flag and 16 bits; flag%8 == 0 makes
// the parameter huge, so that ranges run off the end of memory).
type fuzzProgram struct {
	mem []byte
	ops []byte
}

func (p *fuzzProgram) put(off int, s string) {
	if len(p.mem) < off+len(s) {
		p.mem = append(p.mem, make([]byte, off+len(s)-len(p.mem))...)
	}
	copy(p.mem[off:], s)
}

func (p *fuzzProgram) call(name string, args ...uint16) {
	for i, f := range hostFuncs {
		if f.name == name {
			p.ops = append(p.ops, byte(i))
		}
	}
	for _, a := range args {
		p.ops = append(p.ops, 1)
		p.ops = binary.LittleEndian.AppendUint16(p.ops, a)
	}
}

func (p *fuzzProgram) bytes() []byte {
	out := binary.LittleEndian.AppendUint16(nil, uint16(len(p.mem)))
	return append(append(out, p.mem...), p.ops...)
}

// FuzzHostCalls calls the host functions with arbitrary pointers, lengths and memory
// contents, as a hostile guest could. No input may crash the host (a fault, which fails the
// call, is the only allowed panic), and no input may bring a secret or the proxy's credential
// into guest memory, the Result, a deny reason or an error.
func FuzzHostCalls(f *testing.F) {
	seed := &fuzzProgram{}
	seed.put(0, "Authorization")
	seed.put(32, "canary")
	seed.put(64, "Bearer {secret}")
	seed.put(96, "AWS4{secret}")
	seed.put(128, "data")
	seed.put(160, "x={secret:other}")
	seed.put(192, "Proxy-Authorization")
	seed.put(224, "k")
	seed.call("header_set_secret", 0, 13, 32, 6, 64, 15)
	seed.call("header_get", 0, 13, 1024, 512)
	seed.call("header_get", 192, 19, 1024, 512)
	seed.call("header_names", 2048, 512)
	seed.call("key_from_secret", 32, 6, 96, 12)
	seed.call("key_hmac_sha256", 1, 128, 4)
	seed.call("hmac_sha256", 2, 128, 4, 3000)
	seed.call("sha256_template", 160, 16, 3100)
	seed.call("config_get", 224, 1, 3200, 16)
	seed.call("body_sha256", 3300)
	seed.call("request_path", 3400, 8)
	seed.call("log", 1, 3000, 32)
	seed.call("deny", 403, 3000, 32)
	f.Add(seed.bytes())
	bad := &fuzzProgram{}
	bad.put(0, "X")
	bad.call("header_set", 0, 1, 0xfff0, 0xffff)
	bad.call("request_method", 0xffff, 0xffff)
	f.Add(bad.bytes())
	f.Add([]byte{})

	p, err := fuzzSetup()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		n := int(binary.LittleEndian.Uint16(data))
		data = data[2:]
		if n > len(data) {
			n = len(data)
		}
		mem, prog := data[:n], data[n:]

		in, err := p.pool.get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer p.pool.discard(context.Background(), in)
		gm := in.mod.Memory()
		zero := make([]byte, gm.Size())
		gm.Write(0, zero)
		gm.Write(0, mem)

		req, _ := http.NewRequest("POST", "https://api.example.com/p?q=1", strings.NewReader("hello body"))
		req.Header.Set("X-A", "a")
		req.Header.Set("Proxy-Authorization", fuzzProxyToken)
		c, err := newCall(p, req)
		if err != nil {
			t.Fatal(err)
		}
		defer c.wipe()
		ctx := context.WithValue(context.Background(), callKey{}, c)

		faulted := false
		for len(prog) > 0 && !faulted {
			hf := hostFuncs[int(prog[0])%len(hostFuncs)]
			prog = prog[1:]
			stack := make([]uint64, max(hf.params, hf.results))
			for i := 0; i < hf.params; i++ {
				if len(prog) < 3 {
					prog = nil
					break
				}
				v := uint32(binary.LittleEndian.Uint16(prog[1:3]))
				if prog[0]%8 == 0 {
					v = 0xffffffff - v
				}
				stack[i] = uint64(v)
				prog = prog[3:]
			}
			faulted = callHost(t, hf, p, ctx, in, stack)
		}

		all, _ := gm.Read(0, gm.Size())
		for _, secret := range []string{fuzzCanary, "other-secret-value", fuzzProxyToken} {
			if bytes.Contains(all, []byte(secret)) {
				t.Fatalf("guest memory holds %q", secret)
			}
		}
		res := c.commit()
		var shown strings.Builder
		for _, ch := range res.Changes {
			shown.WriteString(strings.Join(ch.After, "\n"))
		}
		if res.Deny != nil {
			shown.WriteString(res.Deny.Reason)
		}
		shown.WriteString(c.failMsg)
		for _, secret := range []string{fuzzCanary, "other-secret-value"} {
			if strings.Contains(shown.String(), secret) {
				t.Fatalf("a secret is shown: %q", shown.String())
			}
		}
	})
}

// callHost calls one host function and reports whether it faulted. Any other panic is a bug.
func callHost(t *testing.T, hf hostFunc, p *Plugin, ctx context.Context, in *instance, stack []uint64) (faulted bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(*fault); !ok {
				t.Fatalf("%s(%v) panicked: %v", hf.name, stack, r)
			}
			faulted = true
		}
	}()
	hf.fn(p, ctx, in.mod, stack)
	return false
}
