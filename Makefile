# parkgate — build, test, run. Only Go is needed.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/parkgate/parkgate/internal/version.Version=$(VERSION)
BIN      := bin
CMDS     := centrald gated parkctl

.PHONY: all build build-arm64 build-armv7 deb test test-integration fuzz bench run demo scale-demo lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

# Cross-builds for the Raspberry Pi (64- and 32-bit); pure Go, no cgo.
build-arm64:
	@mkdir -p $(BIN)/linux-arm64
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/ $(addprefix ./cmd/,$(CMDS))

build-armv7:
	@mkdir -p $(BIN)/linux-armv7
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv7/ $(addprefix ./cmd/,$(CMDS))

# Debian packages parkgate-centrald, parkgate-gated and parkgate-cli for
# amd64, arm64 and armhf (Raspberry Pi OS 64- and 32-bit) into dist/, with
# dist/SHA256SUMS; versions from git describe (scripts/deb-build.sh).
deb:
	VERSION='$(VERSION)' GO='$(GO)' scripts/deb-build.sh

# The README's test command: every unit and process-level test, with the
# race detector. Tests that need an external service (PostgreSQL, Mosquitto,
# stripe-mock, HAProxy, Chromium) skip with a message unless their
# PARKING_TEST_* variable is set. internal/tools/testsum runs go test -json:
# one line per package as it finishes, the full output of every failure,
# and at the end every skipped test with its reason; its exit status is go
# test's (built, not "go run": go run turns every failure into exit 1 and
# adds its own "exit status" line). PKGS narrows it: make test PKGS=./central/...
PKGS ?= ./...
test:
	@mkdir -p $(BIN)
	@$(GO) build -o $(BIN)/testsum ./internal/tools/testsum
	$(BIN)/testsum -go $(GO) -race -count=1 $(PKGS)

# Short runs (30,000 inputs each) of the fuzz targets on untrusted input: centrald's request
# decoders (bodies and query strings), the ticket verifier, ANPR camera pushes (.ci/run calls this).
FUZZTIME ?= 30000x
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeReserve$$' -fuzztime=$(FUZZTIME) ./central/api/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodePay$$' -fuzztime=$(FUZZTIME) ./central/api/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodePush$$' -fuzztime=$(FUZZTIME) ./central/api/
	$(GO) test -run='^$$' -fuzz='^FuzzCheckQuery$$' -fuzztime=$(FUZZTIME) ./central/api/
	$(GO) test -run='^$$' -fuzz='^FuzzVerify$$' -fuzztime=$(FUZZTIME) ./ticket/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=2s ./hardware/anpr/

# Load benchmarks of centrald and gated (and the arm64 gated under
# qemu-aarch64, skipped with a note if qemu-user is missing); writes
# docs/benchmarks.md.
bench: build build-arm64
	$(GO) run ./cmd/parkbench -centrald $(BIN)/centrald -gated $(BIN)/gated -out docs/benchmarks.md

# The quickstart: centrald on 127.0.0.1:8080 with the demo config, and two
# simulated gates (entry on :8081, exit on :8082).
run demo: build
	@scripts/demo.sh

# Scale-out on loopback (docs/scaling.md): HAProxy on :8080 in front of three
# centrald on PostgreSQL, Mosquitto on :18830, two simulated gates. Needs a
# PostgreSQL (PARKGATE_DEMO_DSN), haproxy and mosquitto.
scale-demo: build
	@scripts/scale-demo.sh

lint:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...

clean:
	rm -rf $(BIN) var build dist
