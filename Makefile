# Faultline's make targets. Everything they need is Go and bash; Helm is
# built from the Go module proxy by scripts/helm-build.sh when HELM is unset.
#
#   make build             bin/faultline, static (the binary the image ships)
#   make test              every test against real parts (scripts/test.sh)
#   make manifests         render deploy/manifests and deploy/rbac/injector.yaml from the chart
#   make check-manifests   fail when they differ from a fresh render
#   make image             the container image (needs a Docker engine)
#   make helm              build Helm and print its path
#   make e2e               the short end-to-end suite (docs/e2e.md)
#   make e2e-long          the long suite and the load levels, by hand (about 20 min)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE   ?= ghcr.io/faultline/faultline:$(VERSION)

# Static: no cgo, so the binary runs on distroless/static (no libc).
GO_BUILD := CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)"

.PHONY: build test manifests check-manifests image helm e2e e2e-long

build:
	$(GO_BUILD) -o bin/faultline ./cmd/faultline

test:
	./scripts/test.sh

manifests:
	./scripts/render-manifests.sh

check-manifests:
	./scripts/render-manifests.sh --check

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

helm:
	@./scripts/helm-build.sh | tail -n 1

e2e:
	go test -count=1 -v -timeout 30m ./test/e2e -run TestPipelineUnderFaults

e2e-long:
	go test -count=1 -v -timeout 90m ./test/e2e -e2e.long
