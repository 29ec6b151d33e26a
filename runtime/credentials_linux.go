package runtime

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/cordonsh/cordon/netjail"
)

// routeListeners arranges a listener per upstream route. In namespace mode the helper
// creates them inside the namespace, on the ports after the proxy's, and hands them over
// like the proxy's (see initConfig.Routes); in fallback mode they listen on the host's
// loopback now, and serve at once. It returns the address of each route as the command
// reaches it.
func (r *runner) routeListeners() (inside []routeListener, addrs map[string]string, err error) {
	addrs = map[string]string{}
	for i, name := range r.creds.Routes() {
		if r.namespace() {
			port := netjail.ProxyPort + 1 + i
			inside = append(inside, routeListener{Name: name, Port: port})
			addrs[name] = "127.0.0.1:" + strconv.Itoa(port)
			continue
		}
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("%w: listener of upstream %q: %v", ErrSetup, name, err)
		}
		addrs[name] = ln.Addr().String()
		r.routePorts = append(r.routePorts, uint16(ln.Addr().(*net.TCPAddr).Port))
		go func() { _ = r.proxy.ServeRoute(name, ln) }()
	}
	return inside, addrs, nil
}

// credentialEnv adds the routes' variables and, when the proxy intercepts TLS, the CA
// bundle (written into the run's private temp dir) to the command's environment, and
// removes the variables that held secrets.
func (r *runner) credentialEnv(env []string, routeAddrs map[string]string) ([]string, error) {
	var ca *CABundle
	if pem := r.proxy.CACertPEM(); pem != nil {
		b, err := WriteCABundle(r.tmpdir, pem, r.cfg.Env)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrSetup, err)
		}
		ca = b
	}
	return r.creds.CommandEnv(env, routeAddrs, ca), nil
}

// serveRouteFDs serves an upstream route on the listener the helper created for it (the
// first descriptor; any others are closed).
func (r *runner) serveRouteFDs(name string, fds []int) error {
	var ln net.Listener
	var err error
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "route "+name)
		if i == 0 {
			ln, err = net.FileListener(f)
		}
		f.Close()
	}
	if err != nil {
		return fmt.Errorf("listener of upstream %q: %v", name, err)
	}
	if ln == nil {
		return fmt.Errorf("listener of upstream %q: no descriptor", name)
	}
	go func() { _ = r.proxy.ServeRoute(name, ln) }()
	return nil
}
