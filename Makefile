# snapkeep — every task a developer or CI needs. Tools go into ./bin (gitignored).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

VERSITYGW_VERSION := v1.8.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION := v1.9.4

# An execution count, not a duration: Go 1.26's fuzz coordinator can fail a duration
# run at its deadline with a spurious "context deadline exceeded" (golang/go#75804).
FUZZTIME ?= 40000x
# package:target pairs run by `make fuzz`.
FUZZ_TARGETS := fsm/layout:FuzzParseKey fsm:FuzzApply fsm/filelist:FuzzFileList fsm:FuzzPackedSegmentMeta fsm:FuzzReadSnapshot manifest:FuzzDecode fsm/backupfile:FuzzBackupHeader manifest/repository:FuzzDecodeIndex manifest/repository:FuzzDecodeMarker server/policy:FuzzSchedule

.PHONY: run test unit build proto tools bench bench-go fuzz vet fmt clean jepsen

## run: a three-node dev cluster plus an embedded S3 on loopback, with the demo.
run:
	$(GO) run ./cmd/snapkeep dev --demo

build:
	$(GO) build -o $(BIN)/snapkeep ./cmd/snapkeep

## test: every test, with the race detector, then each fuzz target for $(FUZZTIME).
## Installs what it needs into ./bin.
test: unit fuzz

# The packages that run longest start first, three test binaries at a time: the
# cluster tests mostly wait on real processes and timers (two binaries kept the two
# cores 70 % busy), and the server package, started last in path order, ran alone for
# its final three minutes (`go test -json` timings: 11.6 min → 8.8 min).
SLOW_PACKAGES := ./server ./jepsen ./jepsen/cluster ./cmd/snapkeep ./client/adopt

unit: tools
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 14m -p 3 $(SLOW_PACKAGES) ./...
	$(GO) vet -tags faultinject,jepsenbug ./...
	$(GO) test -count=1 -tags faultinject ./internal/wallclock ./internal/diskfault
	cd bench && $(GO) vet ./... && $(GO) test -short -count=1 ./...

## fuzz: run each fuzz target for FUZZTIME (make fuzz FUZZTIME=10m for a long run; a
## duration may end in that spurious failure, which names no crasher).
fuzz:
	@for pt in $(FUZZ_TARGETS); do \
		pkg=$${pt%%:*}; target=$${pt##*:}; \
		echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s || exit 1; \
	done

tools: $(BIN)/versitygw $(BIN)/grpcurl

$(BIN)/versitygw:
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

# grpcurl talks to the API through gRPC server reflection (TestReflectionWithGrpcurl).
$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

## proto: regenerate the committed protobuf code (needs protoc: apt install protobuf-compiler).
proto: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
	protoc -I fsm/fsmpb --go_out=paths=source_relative:fsm/fsmpb fsm/fsmpb/fsm.proto
	protoc -I manifest/manifestpb --go_out=paths=source_relative:manifest/manifestpb manifest/manifestpb/manifest.proto
	protoc -I rpc/proto --go_out=module=github.com/snapkeep/snapkeep:. \
		--go-grpc_out=module=github.com/snapkeep/snapkeep:. \
		rpc/proto/snapkeep/v1/snapkeep.proto rpc/proto/snapkeep/v1/backup.proto rpc/proto/snapkeep/v1/integrity.proto \
		rpc/proto/snapkeep/v1/storage.proto \
		rpc/proto/snapkeep/internal/v1/internal.proto

## bench: snapkeep side by side with the etcd + Avro baseline and the raw limits
## (bench/, its own module): starts versitygw, snapkeep and etcd on 127.0.0.1, runs
## every scenario, writes docs/BENCHMARKS.md, docs/bench/*.svg and
## bench/results/<date>.json. QUICK=1: the short run (under 5 minutes).
bench: tools $(BIN)/etcd
	cd bench && $(GO) run ./cmd/bench $(if $(QUICK),--quick) $(BENCH_FLAGS)

## etcd for the baseline, v3.7.3 from the Go module proxy, built inside the bench
## module (go install refuses etcd's replace directives).
$(BIN)/etcd:
	cd bench && $(GO) build -o $(BIN)/etcd go.etcd.io/etcd/server/v3

## bench-go: the component Go benchmarks (results in docs/BENCHMARKS-GO.md).
bench-go:
	$(GO) test ./fsm -run '^$$' -bench '^BenchmarkApply$$' -benchmem
	$(GO) test ./fsm -run '^$$' -bench '^BenchmarkCatalogMemory$$' -benchtime 1x
	$(GO) test ./fsm -run '^$$' -bench '^BenchmarkCatalogMemory$$' -benchtime 1x -fsm.bench-milvus-meta
	$(GO) test ./client/adopt -run '^$$' -bench '^BenchmarkAdopt$$' -benchtime 3x
	$(GO) test ./server -run '^$$' -bench '^BenchmarkCatalogWrites$$' -benchtime 3s
	$(GO) test ./manifest -run '^$$' -bench '^Benchmark(Encode|Decode|Verify)$$' -benchtime 10x -benchmem
	$(GO) test ./server -run '^$$' -bench '^BenchmarkCreateSnapshot$$' -benchtime 3x
	$(GO) test ./server -run '^$$' -bench '^BenchmarkRestoreVsPlainCopy$$' -benchtime 4x -timeout 30m
	$(GO) test ./server -run '^$$' -bench '^BenchmarkOrphanScanVsListWalk$$' -benchtime 1x -timeout 60m
	$(GO) test ./server -run '^$$' -bench '^BenchmarkReclaim100kSegments$$' -benchtime 1x -timeout 60m

## jepsen: the fault-injection harness, 5 minutes, every nemesis and workload
## (results in jepsen/out/<run>/; JEPSEN_FLAGS adds flags, e.g. --seed 42).
jepsen: tools
	$(GO) run ./jepsen/cmd/jepsen --duration 5m --nemesis all --workload all $(JEPSEN_FLAGS)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
