# vipd: `make demo` runs the namespace lab, `make test` runs every test.
# Both install what they need first (Debian, as root). `make help` lists targets.

SHELL := /bin/bash
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BIN := bin

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  \033[1m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the Debian packages builds, tests and the demo need (idempotent)
	@bash scripts/deps.sh

.PHONY: build
build: ## Build vipd and vipctl into bin/, stamped with the version (vipd --version)
	@mkdir -p $(BIN)
	@. scripts/version.sh && set -x && $(GO) build \
		-ldflags "-X github.com/vipd/vipd/internal/buildinfo.version=$$VERSION -X github.com/vipd/vipd/internal/buildinfo.revision=$$rev" \
		-o $(BIN)/ ./cmd/vipd ./cmd/vipctl

.PHONY: generate
generate: ## Regenerate the bpf2go objects from bpf/ (needs clang)
	$(GO) generate ./dataplane/...

.PHONY: check-generate
check-generate: ## Fail if the committed bpf2go output differs from a fresh generate
	@bash scripts/check-generate.sh

.PHONY: lint
lint: ## go vet, staticcheck, and fail when go.mod/go.sum are not tidy
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

.PHONY: test
test: deps bird-ignoremtu build check-generate lint ## Install deps, build, and run every test (race detector, privileged tests included)
	@bash scripts/test.sh

.PHONY: bench
bench: deps ## Run the benchmarks and print their figures
	@bash scripts/bench.sh

.PHONY: demo
demo: deps build ## Start the namespace lab (MODE=bgp or ospf): VIPs announced at two routers, traffic balanced, a live drain, a summary
	@bash examples/lab/demo.sh

.PHONY: package
package: deps ## Build the Debian package bin/vipd_VERSION-1_ARCH.deb (nfpm) and check it (dpkg-deb, lintian, systemd-analyze)
	@deb=$$(bash scripts/package.sh | tail -n1) && bash scripts/package-check.sh "$$deb"

.PHONY: package-test
package-test: deps ## Install the package into a debootstrap'd Debian root (cached in .cache/) and run vipctl/vipd there
	@bash scripts/package-test.sh

.PHONY: bird-ignoremtu
bird-ignoremtu: ## Build BIRD 2 with the ignoremtu patch into .cache/bird-ignoremtu
	@bash scripts/bird-ignoremtu.sh

.PHONY: clean
clean: ## Remove build output (keeps the patched BIRD cache)
	rm -rf $(BIN)
