// Command etcd runs a single-member etcd server (go.etcd.io/etcd/server/v3/embed)
// for Faultline's test control plane. It takes only the few flags a local,
// single-node store needs and, unlike upstream's etcd, reads no ETCD_*
// environment variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		name          = flag.String("name", "default", "member name")
		dataDir       = flag.String("data-dir", "", "directory for the member's data (required)")
		listenClient  = flag.String("listen-client-urls", "http://127.0.0.1:2379", "comma-separated URLs to serve clients on")
		advertClient  = flag.String("advertise-client-urls", "", "comma-separated client URLs to advertise (default: --listen-client-urls)")
		listenPeer    = flag.String("listen-peer-urls", "http://127.0.0.1:2380", "comma-separated URLs to serve peers on")
		advertPeer    = flag.String("initial-advertise-peer-urls", "", "comma-separated peer URLs to advertise (default: --listen-peer-urls)")
		logLevel      = flag.String("log-level", "warn", "debug, info, warn or error")
		unsafeNoFsync = flag.Bool("unsafe-no-fsync", false, "skip fsync: faster, loses data on a machine crash (tests only)")
		quota         = flag.Int64("quota-backend-bytes", 0, "backend size limit in bytes (0: etcd's default)")
		readyTimeout  = flag.Duration("ready-timeout", time.Minute, "how long to wait for the server to become ready")
	)
	flag.Parse()
	if *dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if *advertClient == "" {
		*advertClient = *listenClient
	}
	if *advertPeer == "" {
		*advertPeer = *listenPeer
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.Logger = "zap"
	cfg.LogLevel = *logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = *unsafeNoFsync
	cfg.QuotaBackendBytes = *quota
	var err error
	if cfg.ListenClientUrls, err = parseURLs("listen-client-urls", *listenClient); err != nil {
		return err
	}
	if cfg.AdvertiseClientUrls, err = parseURLs("advertise-client-urls", *advertClient); err != nil {
		return err
	}
	if cfg.ListenPeerUrls, err = parseURLs("listen-peer-urls", *listenPeer); err != nil {
		return err
	}
	if cfg.AdvertisePeerUrls, err = parseURLs("initial-advertise-peer-urls", *advertPeer); err != nil {
		return err
	}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(*readyTimeout):
		return fmt.Errorf("start etcd: not ready after %s", *readyTimeout)
	case <-ctx.Done():
		return nil
	}
	fmt.Fprintf(os.Stderr, "etcd: ready, serving clients on %s\n", *advertClient)

	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("serve etcd: %w", err)
	case <-e.Server.StopNotify():
		return errors.New("serve etcd: server stopped")
	}
}

func parseURLs(flagName, list string) ([]url.URL, error) {
	var out []url.URL
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flagName, err)
		}
		out = append(out, *u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: no URL given", flagName)
	}
	return out, nil
}
