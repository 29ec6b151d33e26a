package plugins

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawModule builds an ABI module whose request hook is body.
func rawModule(imports []string, body func(m *wmod, idx map[string]uint32) [][]byte) []byte {
	var data []wdata
	m := abiModule(imports, func(idx map[string]uint32) [][]byte {
		tmp := newWmod()
		b := body(tmp, idx)
		data = tmp.data
		return b
	})
	m.data = append(m.data, data...)
	return m.bytes()
}

func setRawOK(m *wmod, idx map[string]uint32) [][]byte {
	return [][]byte{m.strAt(16, "X-Raw"), m.strAt(32, "ok"), wcall(idx["header_set"]), opDrop, i32c(0)}
}

func TestRawModuleWorks(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Wasm: rawModule([]string{"header_set"}, setRawOK)})
	req := newReq(t, "GET", "https://api.example.com/")
	res, err := p.Apply(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("X-Raw"); got != "ok" {
		t.Fatalf("X-Raw = %q, want ok (result %+v)", got, res)
	}
}

func TestLoadRefusesBadModules(t *testing.T) {
	withExports := func(f func(m *wmod)) []byte {
		m := newWmod()
		f(m)
		return m.bytes()
	}
	tests := []struct {
		name     string
		wasm     []byte
		sentinel error
		want     string
	}{
		{"not wasm", []byte("#!/bin/sh\necho hi\n"), ErrModule, "invalid plugin module"},
		{"wrong ABI version", withExports(func(m *wmod) {
			m.export("cordon_abi_version_2", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
		}), ErrABIVersion, "built for plugin ABI version 2; this cordon speaks version 1"},
		{"no ABI version", withExports(func(m *wmod) {
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
		}), ErrABIVersion, "not a cordon plugin"},
		{"missing request hook", withExports(func(m *wmod) {
			m.export("cordon_abi_version_1", m.fn(0, 0))
		}), ErrMissingExport, "does not export cordon_on_request"},
		{"hook with wrong signature", withExports(func(m *wmod) {
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 0))
		}), ErrMissingExport, "wrong signature"},
		{"memory not exported", withExports(func(m *wmod) {
			m.noMemory = true
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
		}), ErrMissingExport, `does not export its memory as "memory"`},
		{"built as a command", withExports(func(m *wmod) {
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
			m.export("_start", m.fn(0, 0))
		}), ErrModule, "-buildmode=c-shared"},
		{"foreign import", withExports(func(m *wmod) {
			m.importFunc("env", "abort", 0, 0)
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
		}), ErrModule, "imports env.abort"},
		{"unknown host function", withExports(func(m *wmod) {
			m.importFunc("cordon", "read_secret", 2, 1)
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
		}), ErrModule, "imports cordon.read_secret, which ABI version 1 does not have"},
		{"memory over the limit", withExports(func(m *wmod) {
			m.memMin = 1024 // 64 MiB
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
		}), ErrModule, "memory"},
		{"initialization traps", withExports(func(m *wmod) {
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
			m.export("_initialize", m.fn(0, 0, opUnreachable))
		}), ErrFault, "initialization failed"},
		{"initialization loops", withExports(func(m *wmod) {
			m.export("cordon_abi_version_1", m.fn(0, 0))
			m.export("cordon_on_request", m.fn(0, 1, i32c(0)))
			m.export("_initialize", m.fn(0, 0, opLoop, opBr0, opEnd))
		}), ErrTimeout, "initialization ran longer"},
	}
	h, _ := newTestHost(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := h.Load(context.Background(), PluginConfig{Name: "bad", Path: "bad.wasm", Wasm: tc.wasm, Hosts: patterns("api.example.com")})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tc.sentinel)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `plugin "bad"`) {
				t.Errorf("error %q should name the plugin and say %q", err, tc.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Load took %v", d)
			}
		})
	}
	// The host still loads and runs a good plugin afterwards.
	p := load(t, h, PluginConfig{Wasm: rawModule([]string{"header_set"}, setRawOK)})
	if _, err := p.Apply(context.Background(), newReq(t, "GET", "https://api.example.com/")); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesBadConfig(t *testing.T) {
	good := rawModule([]string{"header_set"}, setRawOK)
	secret := map[string][]byte{"tok": []byte("v")}
	tests := []struct {
		name string
		cfg  PluginConfig
		want string
	}{
		{"no name", PluginConfig{Wasm: good, Hosts: patterns("a.example.com")}, "needs a name"},
		{"no module", PluginConfig{Name: "x", Hosts: patterns("a.example.com")}, "no module"},
		{"no hosts", PluginConfig{Name: "x", Wasm: good}, "no hosts"},
		{"every host with secrets", PluginConfig{Name: "x", Wasm: good, Hosts: patterns("*"), Secrets: secret}, "may not apply to"},
		{"public suffix with secrets", PluginConfig{Name: "x", Wasm: good, Hosts: patterns("*.com"), Secrets: secret}, "may not apply to"},
		{"empty secret", PluginConfig{Name: "x", Wasm: good, Hosts: patterns("a.example.com"), Secrets: map[string][]byte{"tok": nil}}, "is empty"},
		{"bad secret name", PluginConfig{Name: "x", Wasm: good, Hosts: patterns("a.example.com"), Secrets: map[string][]byte{"a b": []byte("v")}}, "secret name"},
		{"tiny memory", PluginConfig{Name: "x", Wasm: good, Hosts: patterns("a.example.com"), MemoryLimit: 1 << 20}, "memory limit"},
		{"negative timeout", PluginConfig{Name: "x", Wasm: good, Hosts: patterns("a.example.com"), Timeout: -1}, "negative timeout"},
		{"empty config key", PluginConfig{Name: "x", Wasm: good, Hosts: patterns("a.example.com"), Config: map[string]string{"": "v"}}, "config key"},
	}
	h, _ := newTestHost(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Load(context.Background(), tc.cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrConfig saying %q", err, tc.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := h.Load(context.Background(), PluginConfig{Name: "x", Path: filepath.Join(t.TempDir(), "nope.wasm"), Hosts: patterns("a.example.com")})
		if !errors.Is(err, ErrModule) || !errors.Is(err, os.ErrNotExist) && !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		_, err := h.Load(context.Background(), PluginConfig{Name: "x", Path: t.TempDir(), Hosts: patterns("a.example.com")})
		if !errors.Is(err, ErrModule) || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestCacheDirMustBePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := NewHost(HostConfig{CacheDir: dir})
	if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("NewHost with a world-writable cache dir: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(HostConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if h.CacheDir() != dir {
		t.Errorf("CacheDir() = %q, want %q", h.CacheDir(), dir)
	}
	h.Close(context.Background())
}

func TestClose(t *testing.T) {
	h, _ := newTestHost(t)
	p := load(t, h, PluginConfig{Wasm: rawModule([]string{"header_set"}, setRawOK), Secrets: map[string][]byte{"s": []byte("secret-value")}})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(context.Background(), newReq(t, "GET", "https://api.example.com/")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	for name, v := range p.secrets {
		if strings.Trim(string(v), "\x00") != "" {
			t.Errorf("secret %s not zeroed after Close", name)
		}
	}
	p2 := load(t, h, PluginConfig{Wasm: rawModule([]string{"header_set"}, setRawOK)})
	h.Close(context.Background())
	if _, err := p2.Apply(context.Background(), newReq(t, "GET", "https://api.example.com/")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Host.Close: %v", err)
	}
	if _, err := h.Load(context.Background(), PluginConfig{Name: "late", Wasm: rawModule([]string{"header_set"}, setRawOK), Hosts: patterns("a.example.com")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Load after Host.Close: %v", err)
	}
}
