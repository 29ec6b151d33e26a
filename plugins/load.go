package plugins

import (
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/cordonsh/cordon/hostmatch"
)

// Names in the guest module that the ABI fixes.
const (
	hostModule     = "cordon"
	wasiModule     = wasi_snapshot_preview1.ModuleName
	exportRequest  = "cordon_on_request"
	exportVersion  = "cordon_abi_version_"
	exportMemory   = "memory"
	exportInit     = "_initialize"
	exportCommand  = "_start"
	wasmPageBytes  = 65536
	maxConfigBytes = 64 << 10
)

// Load compiles the plugin's module (or takes it from the compilation cache), checks that it
// speaks this host's ABI, and starts one instance to make sure it initializes. The returned
// Plugin is ready for Apply. Errors wrap ErrConfig, ErrModule, ErrABIVersion or
// ErrMissingExport and name the plugin and its file.
func (h *Host) Load(ctx context.Context, cfg PluginConfig) (*Plugin, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("plugin %q: %w", cfg.Name, ErrClosed)
	}
	p, err := newPlugin(h, cfg)
	if err != nil {
		return nil, err
	}
	wasm := cfg.Wasm
	if wasm == nil {
		wasm, err = readModule(cfg.Path)
		if err != nil {
			return nil, fmt.Errorf("plugin %q: %w: %v", p.name, ErrModule, err)
		}
	}
	if err := p.start(ctx, wasm); err != nil {
		if p.rt != nil {
			_ = p.rt.Close(ctx)
		}
		p.mem.close()
		for _, v := range p.secrets {
			clear(v)
		}
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		_ = p.close(ctx)
		return nil, fmt.Errorf("plugin %q: %w", cfg.Name, ErrClosed)
	}
	h.plugins[p] = struct{}{}
	return p, nil
}

// newPlugin validates cfg and fills in defaults; it does not touch the module.
func newPlugin(h *Host, cfg PluginConfig) (*Plugin, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("plugin %q: %w: %s", cfg.Name, ErrConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Name == "" {
		return nil, fmt.Errorf("plugins: %w: a plugin needs a name", ErrConfig)
	}
	if cfg.Path == "" && cfg.Wasm == nil {
		return nil, bad("no module: set the path of its .wasm file")
	}
	if len(cfg.Hosts) == 0 {
		return nil, bad("no hosts: a plugin applies only to the hosts it is bound to")
	}
	for _, pat := range cfg.Hosts {
		if pat.String() == "" {
			return nil, bad("an empty host pattern")
		}
		if len(cfg.Secrets) > 0 {
			if err := pat.CheckAllow(); err != nil {
				return nil, bad("a plugin with secrets may not apply to %q: %v", pat.String(), err)
			}
		}
	}
	p := &Plugin{
		host:      h,
		name:      cfg.Name,
		path:      cfg.Path,
		hosts:     append([]hostmatch.Pattern(nil), cfg.Hosts...),
		secrets:   make(map[string][]byte, len(cfg.Secrets)),
		config:    make(map[string]string, len(cfg.Config)),
		timeout:   cfg.Timeout,
		memLimit:  cfg.MemoryLimit,
		maxBody:   cfg.MaxBodyBytes,
		allowHTTP: cfg.AllowHTTP,
		logger:    h.logger.With("plugin", cfg.Name),
		limiter:   newRateLimiter(logBurst, logPerSecond),
	}
	for name, v := range cfg.Secrets {
		if !validSecretName(name) {
			return nil, bad("secret name %q: use 1 to 64 of A-Z a-z 0-9 _ . -", name)
		}
		if len(v) == 0 {
			return nil, bad("secret %q is empty", name)
		}
		p.secrets[name] = append([]byte(nil), v...)
	}
	size := 0
	for k, v := range cfg.Config {
		if k == "" || len(k) > maxNameLen {
			return nil, bad("config key %q: must be 1 to %d bytes", k, maxNameLen)
		}
		size += len(k) + len(v)
		p.config[k] = v
	}
	if size > maxConfigBytes {
		return nil, bad("config table is larger than %d KiB", maxConfigBytes>>10)
	}
	switch {
	case p.timeout == 0:
		p.timeout = DefaultTimeout
	case p.timeout < 0:
		return nil, bad("negative timeout %v", p.timeout)
	}
	switch {
	case p.memLimit == 0:
		p.memLimit = DefaultMemoryLimit
	case p.memLimit < minMemoryLimit || p.memLimit > maxMemoryLimit:
		return nil, bad("memory limit %s is outside %s..%s", formatBytes(p.memLimit), formatBytes(minMemoryLimit), formatBytes(maxMemoryLimit))
	}
	p.memLimit -= p.memLimit % wasmPageBytes
	switch {
	case p.maxBody == 0:
		p.maxBody = DefaultMaxBodyBytes
	case p.maxBody < 0:
		return nil, bad("negative body limit %d", p.maxBody)
	}
	maxInst := cfg.MaxInstances
	switch {
	case maxInst == 0:
		maxInst = max(2, 2*goruntime.GOMAXPROCS(0))
	case maxInst < 0:
		return nil, bad("negative instance limit %d", maxInst)
	}
	p.pool = newPool(p, maxInst)
	p.mem = newMemPool(maxInst)
	return p, nil
}

func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxModuleBytes {
		return nil, fmt.Errorf("%s is larger than %s", path, formatBytes(maxModuleBytes))
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// start creates the plugin's runtime, compiles the module, checks it against the ABI and
// starts the first instance.
func (p *Plugin) start(ctx context.Context, wasm []byte) error {
	where := p.path
	if where == "" {
		where = "module"
	}
	modErr := func(sentinel error, format string, args ...any) error {
		return fmt.Errorf("plugin %q (%s): %w: %s", p.name, where, sentinel, fmt.Sprintf(format, args...))
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(uint32(p.memLimit / wasmPageBytes)).
		WithCompilationCache(p.host.cache)
	p.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, p.rt); err != nil {
		return fmt.Errorf("plugin %q: wasi: %w", p.name, err)
	}
	if err := p.instantiateHostModule(ctx); err != nil {
		return fmt.Errorf("plugin %q: host module: %w", p.name, err)
	}
	cctx := experimental.WithCompilationWorkers(ctx, goruntime.GOMAXPROCS(0))
	cm, err := p.rt.CompileModule(cctx, wasm)
	if err != nil {
		msg := firstLine(err.Error())
		if strings.Contains(msg, "over limit") {
			msg += " (raise the plugin's memory limit)"
		}
		return modErr(ErrModule, "%s", msg)
	}
	p.compiled = cm
	if err := checkModule(cm, p.memLimit); err != nil {
		return modErr(errSentinel(err), "%v", err)
	}
	inst, err := p.pool.get(ctx)
	if err != nil {
		return err
	}
	p.pool.put(inst)
	return nil
}

// moduleError carries the sentinel a module check failed with.
type moduleError struct {
	sentinel error
	msg      string
}

func (e *moduleError) Error() string { return e.msg }

func errSentinel(err error) error {
	if me, ok := err.(*moduleError); ok {
		return me.sentinel
	}
	return ErrModule
}

// checkModule checks a compiled module's exports and imports against ABI version 1.
func checkModule(cm wazero.CompiledModule, memLimit uint64) error {
	fail := func(sentinel error, format string, args ...any) error {
		return &moduleError{sentinel, fmt.Sprintf(format, args...)}
	}
	exports := cm.ExportedFunctions()
	var versions []int
	for name := range exports {
		if v, ok := strings.CutPrefix(name, exportVersion); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				versions = append(versions, n)
			}
		}
	}
	sort.Ints(versions)
	hasVersion := false
	for _, v := range versions {
		hasVersion = hasVersion || v == ABIVersion
	}
	if !hasVersion {
		if len(versions) == 0 {
			return fail(ErrABIVersion, "it exports no %sN function: it is not a cordon plugin (build it with the cordon plugin SDK)", exportVersion)
		}
		return fail(ErrABIVersion, "it is built for plugin ABI version %s; this cordon speaks version %d (rebuild it with a matching SDK, or upgrade cordon)", joinInts(versions), ABIVersion)
	}
	if _, ok := exports[exportInit]; !ok {
		if _, ok := exports[exportCommand]; ok {
			return fail(ErrModule, "it is built as a command (it exports %s): build it with -buildmode=c-shared", exportCommand)
		}
	}
	fn, ok := exports[exportRequest]
	if !ok {
		return fail(ErrMissingExport, "it does not export %s", exportRequest)
	}
	if len(fn.ParamTypes()) != 0 || len(fn.ResultTypes()) != 1 || fn.ResultTypes()[0] != api.ValueTypeI32 {
		return fail(ErrMissingExport, "its %s has the wrong signature: want () -> i32", exportRequest)
	}
	mem, ok := cm.ExportedMemories()[exportMemory]
	if !ok {
		return fail(ErrMissingExport, "it does not export its memory as %q", exportMemory)
	}
	if need := uint64(mem.Min()) * wasmPageBytes; need > memLimit {
		return fail(ErrModule, "it needs %s of memory at start, more than its memory limit %s", formatBytes(need), formatBytes(memLimit))
	}
	if len(cm.ImportedMemories()) > 0 {
		return fail(ErrModule, "it imports a memory; a plugin must define its own")
	}
	known := hostFuncNames()
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch {
		case mod == wasiModule:
		case mod == hostModule && known[name]:
		case mod == hostModule:
			return fail(ErrModule, "it imports %s.%s, which ABI version %d does not have", mod, name, ABIVersion)
		default:
			return fail(ErrModule, "it imports %s.%s; a plugin may import only from %q and %q", mod, name, hostModule, wasiModule)
		}
	}
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatUint(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatUint(n>>10, 10) + " KiB"
	}
	return strconv.FormatUint(n, 10) + " bytes"
}

// firstLine returns the first line of s: wazero appends the wasm stack trace to its errors.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
