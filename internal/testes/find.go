package testes

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Version is the Elasticsearch version scripts/es-fetch.sh fetches; the
// cache lookup prefers it.
const Version = "8.19.21"

// Environment variables the harness reads.
const (
	// EnvHome names an Elasticsearch home directory (what es-fetch.sh prints).
	EnvHome = "FAULTLINE_ES_HOME"
	// EnvRequire=1 turns a missing Elasticsearch or JDK into a test failure.
	EnvRequire = "FAULTLINE_REQUIRE_ES"
	// EnvJavaHome names the JDK to run Elasticsearch with; otherwise
	// ES_JAVA_HOME, JAVA_HOME, java on PATH and /usr/lib/jvm are tried.
	EnvJavaHome = "FAULTLINE_ES_JAVA_HOME"
	// EnvUser names the unprivileged user the server runs as when the tests
	// run as root; default [DefaultUser].
	EnvUser = "FAULTLINE_ES_USER"
)

// ErrUnavailable means Elasticsearch cannot be run here: the distribution
// or a suitable JDK is missing, or the platform is not supported. Start and
// Shared.Get skip the test on it unless FAULTLINE_REQUIRE_ES=1.
var ErrUnavailable = errors.New("elasticsearch for tests is not available: run scripts/es-fetch.sh (and export FAULTLINE_ES_HOME=\"$(scripts/es-fetch.sh)\")")

// CacheDir is where scripts/es-fetch.sh unpacks distributions:
// ${FAULTLINE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faultline}/elasticsearch.
func CacheDir() (string, error) {
	if d := os.Getenv("FAULTLINE_CACHE_DIR"); d != "" {
		return filepath.Join(d, "elasticsearch"), nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "faultline", "elasticsearch"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return filepath.Join(home, ".cache", "faultline", "elasticsearch"), nil
}

// FindHome returns an Elasticsearch home: $FAULTLINE_ES_HOME when set,
// else [Version] in [CacheDir], else the newest version there. The error
// wraps [ErrUnavailable] when there is none.
func FindHome() (string, error) {
	if d := os.Getenv(EnvHome); d != "" {
		if _, err := homeVersion(d); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvHome, d, err)
		}
		return d, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	if d := filepath.Join(cache, Version); checkHome(d) == nil {
		return d, nil
	}
	entries, err := os.ReadDir(cache)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("find elasticsearch: %w", err)
	}
	var best string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		d := filepath.Join(cache, e.Name())
		if checkHome(d) != nil {
			continue
		}
		if best == "" || versionLess(filepath.Base(best), e.Name()) {
			best = d
		}
	}
	if best == "" {
		return "", fmt.Errorf("no elasticsearch in %s and %s is not set: %w", cache, EnvHome, ErrUnavailable)
	}
	return best, nil
}

func checkHome(dir string) error {
	_, err := homeVersion(dir)
	return err
}

// homeVersion checks that dir is an Elasticsearch home and returns its
// version, read from the name of lib/elasticsearch-<version>.jar.
func homeVersion(dir string) (string, error) {
	for _, b := range []string{"elasticsearch", "elasticsearch-keystore", "elasticsearch-users"} {
		st, err := os.Stat(filepath.Join(dir, "bin", b))
		if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("no executable bin/%s in %s: %w", b, dir, ErrUnavailable)
		}
	}
	jars, _ := filepath.Glob(filepath.Join(dir, "lib", "elasticsearch-[0-9]*.jar"))
	for _, j := range jars {
		v := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(j), "elasticsearch-"), ".jar")
		if _, ok := parseVersion(v); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no lib/elasticsearch-<version>.jar in %s: %w", dir, ErrUnavailable)
}

// parseVersion reads "8.19.21" (or "17.0.15", "21") into its numbers.
func parseVersion(v string) ([]int, bool) {
	if v == "" {
		return nil, false
	}
	var out []int
	for p := range strings.SplitSeq(v, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

func versionLess(a, b string) bool {
	va, okA := parseVersion(a)
	vb, okB := parseVersion(b)
	if !okA || !okB {
		return okB && !okA // a parsable version beats anything else
	}
	for i := 0; i < len(va) && i < len(vb); i++ {
		if va[i] != vb[i] {
			return va[i] < vb[i]
		}
	}
	return len(va) < len(vb)
}

// minJava is the oldest JDK that runs Elasticsearch esVersion: 17 for 8.x,
// 21 from 9.0.
func minJava(esVersion string) int {
	if v, ok := parseVersion(esVersion); ok && v[0] >= 9 {
		return 21
	}
	return 17
}

// javaCandidates lists the JDKs to try, in order, with where each came from.
func javaCandidates(explicit string) [][2]string {
	var c [][2]string
	if explicit != "" {
		c = append(c, [2]string{"Options.JavaHome", explicit})
	}
	for _, env := range []string{EnvJavaHome, "ES_JAVA_HOME", "JAVA_HOME"} {
		if d := os.Getenv(env); d != "" {
			c = append(c, [2]string{"$" + env, d})
		}
	}
	if p, err := exec.LookPath("java"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			c = append(c, [2]string{"java on PATH", filepath.Dir(filepath.Dir(r))})
		}
	}
	if entries, err := os.ReadDir("/usr/lib/jvm"); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				c = append(c, [2]string{"/usr/lib/jvm", filepath.Join("/usr/lib/jvm", e.Name())})
			}
		}
	}
	return c
}

// findJava returns the first candidate JDK that has bin/java, is at least
// minMajor, and passes usable (which checks that the server's user can run
// it). The error lists why each candidate was passed over.
func findJava(explicit string, minMajor int, usable func(string) error) (string, error) {
	var reasons []string
	seen := map[string]bool{}
	for _, c := range javaCandidates(explicit) {
		from, dir := c[0], c[1]
		key := dir
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			key = r
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		major, err := javaMajor(dir)
		if err == nil && major < minMajor {
			err = fmt.Errorf("it is Java %d, needs %d or newer", major, minMajor)
		}
		if err == nil {
			err = usable(dir)
		}
		if err != nil {
			reasons = append(reasons, fmt.Sprintf("%s (%s): %v", dir, from, err))
			if from != "/usr/lib/jvm" && from != "java on PATH" && from != "$JAVA_HOME" {
				// An explicit choice that does not work is an error, not a
				// reason to pick another JDK silently.
				return "", fmt.Errorf("JDK %s from %s: %v", dir, from, err)
			}
			continue
		}
		return dir, nil
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "none found (set "+EnvJavaHome+")")
	}
	return "", fmt.Errorf("no JDK %d or newer to run elasticsearch: %s: %w", minMajor, strings.Join(reasons, "; "), ErrUnavailable)
}

// javaMajor reads the feature version of the JDK at dir from its release
// file (JAVA_VERSION="17.0.15").
func javaMajor(dir string) (int, error) {
	st, err := os.Stat(filepath.Join(dir, "bin", "java"))
	if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return 0, errors.New("no executable bin/java")
	}
	f, err := os.Open(filepath.Join(dir, "release"))
	if err != nil {
		return 0, fmt.Errorf("cannot tell its version: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "JAVA_VERSION=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"`)
		v = strings.TrimPrefix(v, "1.") // 1.8.0 is Java 8
		major, _, _ := strings.Cut(v, ".")
		n, err := strconv.Atoi(major)
		if err != nil {
			return 0, fmt.Errorf("release file: JAVA_VERSION %q", v)
		}
		return n, nil
	}
	return 0, errors.New("release file has no JAVA_VERSION")
}
