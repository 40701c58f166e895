//go:build unix

package testes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultUser is the system user Elasticsearch runs as when the tests run
// as root (it refuses to run as root). It is created with
//
//	useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin faultline-es
//
// the first time it is needed, and kept. $FAULTLINE_ES_USER names another.
const DefaultUser = "faultline-es"

// runAs is who the server runs as: nil when as this process's own user.
type runAs struct {
	name     string
	uid, gid uint32
}

var userMu sync.Mutex // one useradd at a time within this process

// serverUser returns nil when this process is not root, else the
// unprivileged user to run Elasticsearch as, creating it when missing.
func serverUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := os.Getenv(EnvUser)
	if name == "" {
		name = DefaultUser
	}
	userMu.Lock()
	defer userMu.Unlock()
	var lastErr error
	// Other test binaries may run useradd at the same moment: it then fails
	// to lock /etc/passwd, or finds the user made. Look again and retry.
	for attempt := range 10 {
		if u, err := user.Lookup(name); err == nil {
			return toRunAs(u)
		}
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
		if err == nil {
			continue // looked up at the top of the loop
		}
		lastErr = fmt.Errorf("useradd %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		if errors.Is(err, exec.ErrNotFound) {
			break
		}
	}
	if u, err := user.Lookup(name); err == nil {
		return toRunAs(u)
	}
	return nil, fmt.Errorf("elasticsearch refuses to run as root, and the user %s to run it as cannot be created: %w", name, lastErr)
}

func toRunAs(u *user.User) (*runAs, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s is root: elasticsearch refuses to run as root", u.Username)
	}
	return &runAs{name: u.Username, uid: uint32(uid), gid: uint32(gid)}, nil
}

// sysProcAttr puts the server in its own process group (stopping it
// reaches the server JVM its launcher starts), kills it when this process
// dies first where the platform can, and runs it as u.
func sysProcAttr(u *runAs) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(a)
	if u != nil {
		a.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}}
	}
	return a
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) {
	_ = syscall.Kill(-pid, sig)
}

// chownTree gives path and everything under it to u.
func chownTree(path string, u *runAs) error {
	if u == nil {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(u.uid), int(u.gid))
	})
}

// reachable reports whether u can reach path: search permission on every
// directory from / down to path's parent, and the permission in want
// (0o4 read, 0o1 execute/search) on path itself.
func reachable(path string, u *runAs, want fs.FileMode) error {
	if u == nil {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	check := func(p string, want fs.FileMode) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		mode := st.Mode().Perm()
		var have fs.FileMode
		switch {
		case sys.Uid == u.uid:
			have = mode >> 6
		case sys.Gid == u.gid:
			have = mode >> 3
		default:
			have = mode
		}
		if have&want != want {
			return fmt.Errorf("user %s cannot reach %s (mode %v, owner %d:%d)", u.name, p, st.Mode().Perm(), sys.Uid, sys.Gid)
		}
		return nil
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		if err := check(d, 0o1); err != nil {
			return err
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return check(abs, want)
}

// linkTree makes dst a copy of src's tree whose directories are new (mode
// 0755) and whose files are hard links to src's, or copies where a link
// cannot be made (another file system). It lets an unprivileged user run a
// distribution unpacked under a directory it cannot enter, such as /root.
func linkTree(src, dst string, skip func(rel string) bool) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			return os.Chmod(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			if err := os.Link(p, target); err == nil {
				return nil
			}
			return copyFile(p, target)
		default:
			return nil
		}
	})
}
