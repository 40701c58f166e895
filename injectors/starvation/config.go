package starvation

import (
	"fmt"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/faultline/faultline/internal/units"
)

// DefaultImage is the default stress image: stress-ng's own build, whose
// entrypoint is /usr/bin/stress-ng.
const DefaultImage = "ghcr.io/colinianking/stress-ng:latest"

// Config tunes the resource-starvation injector.
type Config struct {
	Image             string         `yaml:"image" doc:"Image of the stress pods; its entrypoint (or command) must be stress-ng. Pin a digest in production (image@sha256:...) and make sure your registry policy (admission controller, pull secrets, mirrors) allows it."`
	AllowedImages     []string       `yaml:"allowed_images" doc:"Other images a command may ask for (resource_starvation.image), exact or as globs with '*'. Empty: commands can only use image."`
	Command           []string       `yaml:"command" doc:"Command that runs the stress-ng arguments, e.g. [/usr/bin/stress-ng]. Empty: the image's entrypoint."`
	ImagePullPolicy   string         `yaml:"image_pull_policy" doc:"Pull policy of the stress container: IfNotPresent, Always or Never."`
	MemoryOverhead    units.ByteSize `yaml:"memory_overhead" doc:"Memory added to a stress pod's request and limit beyond memory_bytes, for stress-ng's own processes, so the memory worker is not OOM-killed before it holds all of memory_bytes."`
	MemoryOnlyCPU     string         `yaml:"memory_only_cpu" doc:"CPU request and limit of a stress pod that only holds memory (cpu_workers 0), a Kubernetes quantity such as 100m."`
	DeadlineSlack     time.Duration  `yaml:"deadline_slack" doc:"Added to the fault's duration for the stress pods' activeDeadlineSeconds, the second deadline after Faultline's revert (the third is stress-ng's own --timeout, the duration)."`
	RunAsUser         int64          `yaml:"run_as_user" doc:"Non-root numeric user (and group) id the stress container runs as."`
	PriorityClassName string         `yaml:"priority_class_name" doc:"PriorityClass of the stress pods. Empty: the cluster's default."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		Image:           DefaultImage,
		AllowedImages:   []string{},
		Command:         []string{},
		ImagePullPolicy: string(corev1.PullIfNotPresent),
		MemoryOverhead:  64 << 20,
		MemoryOnlyCPU:   "100m",
		DeadlineSlack:   30 * time.Second,
		RunAsUser:       65534,
	}
}

// Validate returns one error per invalid field, each starting with the
// field's YAML name.
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if err := checkImage(c.Image); err != nil {
		bad("image", "%v", err)
	}
	for i, g := range c.AllowedImages {
		if _, err := path.Match(g, ""); err != nil || strings.TrimSpace(g) != g || g == "" {
			bad(fmt.Sprintf("allowed_images[%d]", i), "%q is not an image or glob", g)
		}
	}
	for i, a := range c.Command {
		if a == "" {
			bad(fmt.Sprintf("command[%d]", i), "must not be empty")
		}
	}
	switch corev1.PullPolicy(c.ImagePullPolicy) {
	case corev1.PullIfNotPresent, corev1.PullAlways, corev1.PullNever:
	default:
		bad("image_pull_policy", "%q is not IfNotPresent, Always or Never", c.ImagePullPolicy)
	}
	if c.MemoryOverhead < 16<<20 {
		bad("memory_overhead", "must be at least 16MiB (got %s)", c.MemoryOverhead)
	}
	if q, err := resource.ParseQuantity(c.MemoryOnlyCPU); err != nil {
		bad("memory_only_cpu", "%q is not a quantity: %v", c.MemoryOnlyCPU, err)
	} else if q.MilliValue() < 10 {
		bad("memory_only_cpu", "must be at least 10m (got %s)", c.MemoryOnlyCPU)
	}
	if c.DeadlineSlack < time.Second {
		bad("deadline_slack", "must be at least 1s (got %s)", c.DeadlineSlack)
	}
	if c.RunAsUser < 1 {
		bad("run_as_user", "must be a non-root user id (got %d)", c.RunAsUser)
	}
	if c.PriorityClassName != "" {
		if msgs := validation.IsDNS1123Subdomain(c.PriorityClassName); len(msgs) > 0 {
			bad("priority_class_name", "%q: %s", c.PriorityClassName, strings.Join(msgs, "; "))
		}
	}
	return errs
}

// checkImage accepts a plausible image reference; the container runtime
// has the last word.
func checkImage(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case strings.ContainsAny(s, " \t\n"):
		return fmt.Errorf("%q contains white space", s)
	case strings.HasPrefix(s, "-") || strings.HasSuffix(s, ":") || strings.HasSuffix(s, "@"):
		return fmt.Errorf("%q is not an image reference", s)
	}
	return nil
}

// imageAllowed reports whether a command may ask for image.
func (c Config) imageAllowed(image string) bool {
	if image == c.Image {
		return true
	}
	for _, g := range c.AllowedImages {
		if ok, _ := path.Match(g, image); ok {
			return true
		}
	}
	return false
}
