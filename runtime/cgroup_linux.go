package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// pidsCgroup is a cgroup with a pids limit, created for one run. It is how the process limit
// binds real root, whom RLIMIT_NPROC does not.
type pidsCgroup struct{ dir string }

// pidsBase finds the directory under which this process may create a cgroup with a pids
// limit: the pids hierarchy of cgroup v1, or the process's cgroup v2 if the pids controller
// is enabled for its children. It returns "" if there is none it can write.
func pidsBase() (dir, kind string) {
	paths := map[string]string{} // controller ("pids", or "" for v2) -> cgroup path
	if f, err := os.Open("/proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			for _, c := range strings.Split(parts[1], ",") {
				paths[c] = parts[2]
			}
		}
		f.Close()
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	var v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 > len(fields) || len(fields) < 5 {
			continue
		}
		root, mnt, fstype, super := fields[3], fields[4], fields[sep+1], fields[sep+3]
		rel := func(p string) string {
			return filepath.Join(mnt, strings.TrimPrefix(p, root))
		}
		switch fstype {
		case "cgroup":
			if p, ok := paths["pids"]; ok && strings.Contains(","+super+",", ",pids,") {
				d := rel(p)
				if unix.Access(d, unix.W_OK) == nil {
					return d, "cgroup pids (v1)"
				}
			}
		case "cgroup2":
			if p, ok := paths[""]; ok {
				v2 = rel(p)
			}
		}
	}
	if v2 != "" && unix.Access(v2, unix.W_OK) == nil {
		if b, err := os.ReadFile(filepath.Join(v2, "cgroup.subtree_control")); err == nil && strings.Contains(" "+string(b)+" ", " pids") {
			return v2, "cgroup pids (v2)"
		}
	}
	return "", ""
}

// newPidsCgroup creates a cgroup limited to max tasks. Cgroups left by runs that were killed
// are removed on the way.
func newPidsCgroup(max int) (*pidsCgroup, error) {
	base, _ := pidsBase()
	if base == "" {
		return nil, errors.New("no writable pids cgroup")
	}
	if entries, err := os.ReadDir(base); err == nil {
		for _, e := range entries {
			if pid, ok := cgroupOwner(e.Name()); ok && !alive(pid) {
				_ = os.Remove(filepath.Join(base, e.Name())) // fails, harmlessly, if not empty
			}
		}
	}
	dir := filepath.Join(base, "cordon-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup: %w", err)
	}
	c := &pidsCgroup{dir}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.Itoa(max)), 0); err != nil {
		c.remove()
		return nil, fmt.Errorf("set %s/pids.max: %w", dir, err)
	}
	return c, nil
}

// cgroupOwner returns the pid of the run that named a cgroup "cordon-PID-SUFFIX".
func cgroupOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "cordon-")
	if !ok {
		return 0, false
	}
	id, _, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(id)
	return pid, err == nil && pid > 0
}

// add moves a process (all its threads) into the cgroup.
func (c *pidsCgroup) add(pid int) error {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		return fmt.Errorf("move process into %s: %w", c.dir, err)
	}
	return nil
}

// parentProcs is the cgroup.procs file of the cgroup's parent.
func (c *pidsCgroup) parentProcs() string {
	return filepath.Join(filepath.Dir(c.dir), "cgroup.procs")
}

// remove deletes the cgroup once its processes are gone.
func (c *pidsCgroup) remove() {
	for i := 0; i < 50; i++ {
		err := os.Remove(c.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) || !errors.Is(err, unix.EBUSY) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
