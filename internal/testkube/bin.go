package testkube

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The four binaries of a control plane, as scripts/kube-build.sh names them.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
)

var binaries = []string{Etcd, APIServer, ControllerManager, Scheduler}

// EnvKubeBin names the directory that holds the control-plane binaries.
const EnvKubeBin = "FAULTLINE_KUBE_BIN"

// ErrNoBinaries means the control-plane binaries were not found: run
// scripts/kube-build.sh.
var ErrNoBinaries = errors.New("kubernetes control-plane binaries not found: run scripts/kube-build.sh (and export FAULTLINE_KUBE_BIN=\"$(scripts/kube-build.sh)\")")

// CacheDir is where scripts/kube-build.sh keeps its builds:
// ${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/kube.
func CacheDir() (string, error) {
	if d := os.Getenv("FAULTLINE_CACHE_DIR"); d != "" {
		return filepath.Join(d, "kube"), nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "faultline", "kube"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return filepath.Join(home, ".cache", "faultline", "kube"), nil
}

// FindBinDir returns the directory with the control-plane binaries: the
// value of FAULTLINE_KUBE_BIN when set, else the newest complete build under
// [CacheDir]. The error wraps [ErrNoBinaries] when there is none.
func FindBinDir() (string, error) {
	if d := os.Getenv(EnvKubeBin); d != "" {
		if err := checkBinDir(d); err != nil {
			return "", fmt.Errorf("find binaries: %s=%s: %w", EnvKubeBin, d, err)
		}
		return d, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", fmt.Errorf("find binaries: %w", err)
	}
	entries, err := os.ReadDir(cache)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("find binaries: %w", err)
	}
	var (
		best     string
		bestTime time.Time
	)
	for _, e := range entries {
		if !e.IsDir() || e.Name()[0] == '.' {
			continue
		}
		d := filepath.Join(cache, e.Name(), "bin")
		if checkBinDir(d) != nil {
			continue
		}
		st, err := os.Stat(d)
		if err != nil {
			continue
		}
		if best == "" || st.ModTime().After(bestTime) {
			best, bestTime = d, st.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("find binaries: nothing in %s and %s is not set: %w", cache, EnvKubeBin, ErrNoBinaries)
	}
	return best, nil
}

func checkBinDir(dir string) error {
	for _, b := range binaries {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s missing: %w", b, ErrNoBinaries)
			}
			return err
		}
		if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file: %w", b, ErrNoBinaries)
		}
	}
	return nil
}
