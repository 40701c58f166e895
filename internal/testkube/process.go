package testkube

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// StartError reports a control-plane binary that failed to start or to
// become ready. Its message names the binary and its log file and quotes the
// log's last lines.
type StartError struct {
	Binary  string // etcd, kube-apiserver, kube-controller-manager or kube-scheduler
	LogPath string // the binary's stdout and stderr
	LogTail string // the last lines of that log
	Err     error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("start %s: %v (log: %s); last lines of the log:\n%s", e.Binary, e.Err, e.LogPath, e.LogTail)
}

func (e *StartError) Unwrap() error { return e.Err }

// tailLines is how much of a log a StartError quotes.
const tailLines = 30

// process is one running binary. It owns the goroutine that waits for it:
// that goroutine ends when the process exits, and closes done.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // valid once done is closed
}

// startProcess starts bin with args in its own process group, stdout and
// stderr going to logPath (truncated).
func startProcess(name, bin string, args []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = childEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, &StartError{Binary: name, LogPath: logPath, Err: err}
	}
	// The child holds its own descriptor now.
	_ = logFile.Close()
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// childEnv is this process's environment without ETCD_* variables: etcd
// and its libraries read every one of them as configuration.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended; call it only after done.
func (p *process) exitError() error {
	if p.waitErr != nil {
		return fmt.Errorf("exited: %w", p.waitErr)
	}
	return errors.New("exited with status 0")
}

// startError wraps err with the process's name, log path and log tail.
func (p *process) startError(err error) *StartError {
	return &StartError{Binary: p.name, LogPath: p.logPath, LogTail: tailFile(p.logPath, tailLines), Err: err}
}

// stop ends the process group: SIGTERM, then SIGKILL after grace. It
// returns once the process has been reaped, with an error when it had to be
// killed.
func (p *process) stop(grace time.Duration) error {
	var err error
	if p.exited() {
		err = fmt.Errorf("stop %s: it had ended before Stop: %w (log: %s)", p.name, p.exitError(), p.logPath)
	} else {
		signalGroup(p.cmd.Process, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		select {
		case <-p.done:
			timer.Stop()
		case <-timer.C:
			err = fmt.Errorf("stop %s: still running %s after SIGTERM, killed (log: %s)", p.name, grace, p.logPath)
		}
	}
	// Also ends anything the binary left behind in its group.
	signalGroup(p.cmd.Process, syscall.SIGKILL)
	<-p.done
	return err
}

// tailFile returns the last n lines of the file at path, or a note saying
// why it cannot.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	const maxRead = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	if st.Size() > maxRead {
		if _, err := f.Seek(st.Size()-maxRead, io.SeekStart); err != nil {
			return fmt.Sprintf("(cannot read log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return "(log is empty)"
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
