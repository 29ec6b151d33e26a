package runtime

import (
	"bufio"
	"log/slog"
	"os/exec"
	"syscall"
	"time"
)

// logPath is the unified log's command-line tool.
const logPath = "/usr/bin/log"

// denialGrace is how long cordon waits, after the command has exited, for the last reports
// of its denials: the unified log delivers them to `log stream` with a short delay.
const denialGrace = 250 * time.Millisecond

// startDenialStream reads the unified log for the reports of this run's denials (the
// profile gives each deny rule the run's tag as its message) into l, until stop is called.
// Reporting is best effort: if the stream cannot be started, the run goes on without it and
// the debug log says why.
func startDenialStream(l *denialLog, log *slog.Logger) (stop func()) {
	cmd := exec.Command(logPath, "stream", "--style", "ndjson", "--predicate", `eventMessage CONTAINS "`+l.tag+`"`)
	cmd.Env = []string{}
	// Not in cordon's process group: a ^C at the terminal is for the command.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Debug("denial reports unavailable", "err", err)
		return func() {}
	}
	if err := cmd.Start(); err != nil {
		log.Debug("denial reports unavailable", "err", err)
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.add(sc.Bytes())
		}
	}()
	return func() {
		time.Sleep(denialGrace)
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	}
}
