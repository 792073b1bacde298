# berth — build, demo, test and benchmark. Every target installs what it
# needs from Debian's packages and the Go module proxy, idempotently, into
# git-ignored caches (.cache/, out/). Run as root on Debian 12.

SHELL    := /bin/bash
GO       ?= go
ARCH     ?= amd64
HOSTARCH := $(shell $(GO) env GOARCH)
ARCHES   := amd64 arm64 arm riscv64
VM_ARCHES := $(ARCHES)
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The runtime settings berth is built with: main.go's //go:debug lines, as
# go list reports them, and memprofilerate=0, which //go:debug does not
# take. Without it the runtime records a heap profile sample of its first
# allocation, before berth's code runs, and unwinds the stack for it
# (README, Decisions, "A CLI berth takes a huge page", for what that
# costs a start). berth has no heap profile to show.
GODEBUG_DEFAULT = $(shell $(GO) list -f '{{.DefaultGODEBUG}}' .),memprofilerate=0
LDFLAGS  = -s -w -X berth/boot.Version=$(VERSION) -X=runtime.godebugDefault=$(GODEBUG_DEFAULT)
BINS     := $(ARCHES:%=out/berth-linux-%)
# Packages off every start path (TLS and certificates, the registry
# client, DNS, JSON, nftables, TOML, the board, the CLI and PID 1's own
# code) are
# compiled without inlining: that keeps the arm64 binary under its 8 MiB
# limit with TLS in it (README, "Decisions"). The start and unpack paths
# (runtime, container, image, zstd, os) keep it; x/sys/unix's
# wrappers are not inlined into them, a call's cost beside a system call's.
# fmt is compiled so too: it only formats errors and log lines, never
# once per file of an unpack or per step of a start. So is time: its
# calls on those paths (a timestamp per step, an mtime per file) cost a
# few nanoseconds each beside the system call they go with, and without
# inlining it is 13 KiB smaller on arm64. bufio (config, /proc and
# registry reads; an unpack reads the image with pread and its mapping,
# not bufio) and
# hash/crc32 (gzip) too: together 2.2 KiB of read-only data and 1 KiB
# of code on arm64, which brought its read-only segment back under a
# 64 KiB boundary it had crossed by 520 bytes (stop 44: the binary's
# segments are 64 KiB-aligned, so 520 bytes more cost 64 KiB of file).
# strconv too (stop 45, when the segment crossed again by 104 bytes):
# a start formats a few numbers (/proc paths, cgroup values) and an
# unpack parses them only in PAX records (fastHeader has its own octal
# parser), each beside a system call; 3.5 KiB of read-only data.
# path/filepath, path and io/fs too (stop 46, when PID 1's own cgroup
# took the segment 392 bytes over again): a start joins a few paths and
# an unpack asks a FileMode or two per entry, each beside a system call;
# 7.5 KiB of read-only data and 0.4 KiB of code (the three together:
# path/filepath alone grew the code past its own 64 KiB step). syscall
# too (stop 47, when the code crossed its step by 2.4 KiB): each of its
# wrappers is one call more beside the system call it makes; 5.3 KiB of
# code on arm64. io and crypto/sha256 too (stop 52, when an unpack's
# frames read with pread took the code 516 bytes past its step): io's
# helpers (ReadFull, Copy) are a call each beside the reads they make,
# and crypto/sha256's wrappers one beside a block function in assembly;
# 1.4 KiB of code on arm64 together.
COLD     := crypto/tls crypto/x509/... crypto/internal/fips140/nistec/... \
            crypto/internal/fips140/mlkem crypto/hpke math/big encoding/asn1 \
            net net/url encoding/json vendor/golang.org/x/crypto/cryptobyte/... \
            crypto/ecdsa crypto/rsa crypto/ecdh crypto/internal/fips140/rsa \
            crypto/internal/fips140/bigmod crypto/internal/fips140/ecdsa \
            crypto/internal/fips140/ecdh crypto/internal/fips140/edwards25519/... \
            crypto/ed25519 crypto/internal/fips140/ed25519 crypto/internal/fips140/aes/... \
            crypto/internal/fips140/aes crypto/aes crypto/cipher \
            crypto/internal/fips140/sha512 crypto/sha512 crypto/internal/fips140/hmac \
            crypto/hmac crypto/internal/fips140/drbg encoding/hex \
            vendor/golang.org/x/crypto/... crypto/internal/fips140/tls12 \
            crypto/internal/fips140/tls13 crypto/internal/fips140/hkdf crypto/hkdf \
            crypto/internal/fips140/sha3 crypto/sha3 encoding/pem encoding/base64 \
            net/netip vendor/golang.org/x/net/... github.com/u-root/... flag text/tabwriter \
            berth/container/seccomp berth/internal/busybox \
            berth/image/registry berth/board/... berth/appliance berth/internal/rtnl \
            berth/cli berth/boot berth/internal/nft github.com/BurntSushi/... \
            github.com/ulikunitz/... \
            compress/flate compress/gzip github.com/klauspost/compress/flate \
            github.com/klauspost/compress/gzip reflect os/user log container/list \
            hash/fnv unicode/utf16 math/rand math/rand/v2 os/signal \
            crypto/elliptic crypto/md5 crypto/sha1 crypto/des internal/bisect context unique \
            golang.org/x/sys/unix golang.org/x/net/... golang.org/x/sync/... \
            github.com/moby/sys/... crypto/rc4 crypto/dsa crypto/x509/pkix crypto/mlkem \
            hash/crc64 berth/internal/safe berth/internal/mountinfo berth fmt time \
            bufio hash/crc32 strconv path/filepath path io/fs syscall \
            io crypto/sha256
GCFLAGS  := $(COLD:%=-gcflags=%=-l)
SIZE_LIMIT := 8388608

export CGO_ENABLED := 0

.PHONY: all
all: $(BINS)
	@echo "binaries:"
	@for b in $(BINS); do \
	  printf '  %-26s %9d bytes  %s\n' $$b $$(stat -c %s $$b) "$$(file -b $$b | grep -o 'statically linked' || echo 'NOT STATIC')"; \
	done
	@size=$$(stat -c %s out/berth-linux-arm64); test $$size -le $(SIZE_LIMIT) || \
	  { echo "out/berth-linux-arm64 is $$size bytes, over its limit of $(SIZE_LIMIT) (8 MiB)"; exit 1; }

# go build decides what is stale; FORCE makes make always ask it.
out/berth-linux-%: FORCE | host-deps
	@mkdir -p out
	GOOS=linux GOARCH=$* $(if $(filter arm,$*),GOARM=7) $(GO) build -trimpath $(GCFLAGS) -ldflags '$(LDFLAGS)' -o $@ .

.PHONY: FORCE
FORCE:

# Host tools from Debian's packages, installed only when missing:
# $(call install,COMMAND:PACKAGE ...).
install = missing=""; for t in $(1); do \
	  command -v $${t%%:*} >/dev/null || missing="$$missing $${t\#\#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
# qemu-system-misc is riscv64's; OpenSBI, its -bios default, comes with
# qemu-system-data. The filesystem tools make the tests' disks (data
# partitions: ext4, FAT, GPT).
HOST_TOOLS  := qemu-system-x86_64:qemu-system-x86 qemu-system-aarch64:qemu-system-arm qemu-system-riscv64:qemu-system-misc \
               openssl:openssl xz:xz-utils wget:wget \
               file:file zstd:zstd tar:tar dpkg-deb:dpkg apt-get:apt umoci:umoci \
               mkfs.ext4:e2fsprogs mkfs.vfat:dosfstools sgdisk:gdisk nft:nftables \
               strace:strace
BENCH_TOOLS := runc:runc crun:crun bwrap:bubblewrap debootstrap:debootstrap unshare:util-linux \
               qemu-arm-static:qemu-user-static
.PHONY: host-deps bench-deps registry-deps
host-deps:
	@$(call install,$(HOST_TOOLS))
# The registry tests' peers (image/registry, cli): Debian's docker-registry
# (the CNCF distribution registry 2.8), skopeo, and htpasswd for basic
# auth's bcrypt file. Installing docker-registry would start its service
# on :5000: a policy-rc.d that answers 101 keeps it stopped (the tests
# start their own, on free ports). A policy-rc.d the machine already has
# (Docker images ship one) is set aside meanwhile and put back, also by
# the next make when one was cut off.
REGISTRY_TOOLS := docker-registry:docker-registry skopeo:skopeo htpasswd:apache2-utils
registry-deps: | host-deps
	@rc=/usr/sbin/policy-rc.d saved=/usr/sbin/policy-rc.d.berth-saved; \
	if test -e $$saved; then mv -f $$saved $$rc || exit 1; fi; \
	if ! command -v docker-registry >/dev/null; then \
	  if test -e $$rc; then mv $$rc $$saved || exit 1; fi; \
	  printf '#!/bin/sh\nexit 101\n' > $$rc && chmod 755 $$rc; \
	  $(call install,docker-registry:docker-registry); status=$$?; \
	  rm -f $$rc; if test -e $$saved; then mv $$saved $$rc; fi; exit $$status; \
	fi
	@$(call install,$(REGISTRY_TOOLS))
# AppArmor's compiler and SELinux's reference policy, for the security
# modules' QEMU test (boot/qemu_lsm_test.go): apparmor_parser compiles a
# profile for the guest kernel's features; installing
# selinux-policy-default compiles the policy berth loads.
SELINUX_POLICY := /etc/selinux/default/policy/policy.33
.PHONY: lsm-deps
lsm-deps: | host-deps
	@$(call install,apparmor_parser:apparmor)
	@test -f $(SELINUX_POLICY) || { echo "installing: selinux-policy-default"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends selinux-policy-default; }
bench-deps: host-deps registry-deps
	@$(call install,$(BENCH_TOOLS))

# Debian kernels and busybox for the guests, via apt-get download with
# APT's architecture options, unpacked with dpkg -x into .cache/deb/ARCH:
# Debian 12's linux-image-amd64, -arm64 and (armhf) -armmp-lpae; Debian
# 13's linux-image-riscv64 (see scripts/fetch-deb.sh).
KERNEL_PKG_arm := linux-image-armmp-lpae
kernel-pkg = $(or $(KERNEL_PKG_$(1)),linux-image-$(1))
.PHONY: fetch fetch-%
fetch: fetch-$(ARCH) fetch-$(HOSTARCH)
fetch-%: | host-deps
	@scripts/fetch-deb.sh $* .cache/deb/$*/busybox-static busybox-static
	@scripts/fetch-deb.sh $* .cache/deb/$*/linux-image $(call kernel-pkg,$*)

# The main job: boot the demo appliance in QEMU (ARCH=amd64, arm64, arm or
# riscv64) as a user does — a busybox root filesystem (./demo writes it),
# berth image pack, then berth vm, which builds the initramfs and boots it
# (--timeout: a hang guard).
DEMO := .cache/demo/$(ARCH)
.PHONY: demo
demo: all fetch
	$(GO) run ./demo -arch $(ARCH) -o $(DEMO)/rootfs
	out/berth-linux-$(HOSTARCH) image pack $(DEMO)/rootfs -o $(DEMO)/demo.tar.zst
	out/berth-linux-$(HOSTARCH) vm --arch $(ARCH) --timeout 10m --file /images/demo.tar.zst=$(DEMO)/demo.tar.zst demo/berth.toml

# Everything: vet, formatting, unit and integration tests on this host
# (cgroup v1 here), QEMU boots on amd64, arm64, arm and riscv64 and on a
# Raspberry Pi 3 (raspi3b) (cgroup v2). The nofaultaround experiment
# (internal/hugeheap, issue 11) is built and tested with its tag too, so
# that it keeps compiling and its check of the mechanism runs.
.PHONY: test
test: all $(VM_ARCHES:%=fetch-%) lsm-deps registry-deps
	@test "$$(id -u)" = 0 || { echo "make test needs root: namespaces, mounts and cgroups are real"; exit 1; }
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt: not formatted: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) vet -tags nofaultaround ./internal/hugeheap/
	$(GO) test -count=1 -tags nofaultaround ./internal/hugeheap/
	@for f in $(FUZZ); do \
	  echo "fuzz $$f for $(FUZZTIME)"; \
	  GO=$(GO) sh .ci/fuzz-one ./$${f%%:*}/ $${f#*:} $(FUZZTIME) $(FUZZMINTIME) || exit 1; \
	done

# The 32-bit test: the arm berth under Debian's qemu-user-static (qemu-arm,
# a 32-bit address space) unpacks an image of more than 2 GiB, which it
# reads through windows, and cats the file at its end
# (image/qemuarm_test.go). It needs about 5 GiB in /var/tmp (or
# BERTH_BIG_TMPDIR) and a minute or two; CI runs it after make test.
.PHONY: test-32bit
test-32bit: out/berth-linux-arm
	@$(call install,qemu-arm-static:qemu-user-static)
	$(GO) vet -tags qemuarm ./image/
	BERTH_ARM=$(abspath out/berth-linux-arm) $(GO) test -count=1 -timeout 30m -tags qemuarm -run '^TestQemuArm32$$' -v ./image/

# Fuzz targets run briefly in make test; their corpora live in
# PKG/testdata/fuzz. Longer: make test FUZZTIME=10m.
# .ci/fuzz-one runs each; it runs a target once more only when Go 1.26's
# coordinator failed it at the -fuzztime boundary with nothing but
# "context deadline exceeded" (go.dev/issue/75804).
FUZZ     := image:FuzzIndex image:FuzzUnpackTar image:FuzzOCIManifest image:FuzzSparseMap image:FuzzDecodeJSON boot:FuzzParseConfig board:FuzzParseDHCP \
            image/registry:FuzzParseManifest image/registry:FuzzParseChallenge image:FuzzFastHeader board:FuzzProbeBlock \
            internal/rtnl:FuzzEachMessage
FUZZTIME ?= 10s
# Go minimizes each new interesting input for up to 60 s by default, and
# those executions are not counted: in a 10 s run a target that finds one
# early stops counting ("0/sec"). FuzzUnpackTar ran 2,538 executions in
# 10 s with the default, 15,285 with 1 s.
FUZZMINTIME ?= 1s

# Benchmarks against the peers named in the issues, side by side in one
# run (see bench/README.md). Timing never gates a test. Every figure they
# print goes into one results file, bench/results/DATE.json (git-ignored):
# go run ./bench/compare OLD.json NEW.json shows what changed.
BENCH_TIME := $(shell date -u +%Y-%m-%dT%H-%M-%S)
RESULTS    ?= bench/results/$(BENCH_TIME).json
.PHONY: bench
bench: all $(VM_ARCHES:%=fetch-%) bench-deps bench-armhf
	$(GO) run ./bench/start -n 25 -json $(RESULTS)
	$(GO) run ./bench/boot -n 3 -json $(RESULTS)
	$(GO) run ./bench/boot -n 3 -only amd64 -rss=false -icount 3 -json $(RESULTS)
	$(GO) run ./bench/unpack -n 5 -json $(RESULTS)
	$(GO) run ./bench/pull -n 5 -json $(RESULTS)
	$(GO) run ./bench/mem -n 3 -json $(RESULTS)
	@echo "results: $(RESULTS) (go run ./bench/compare OLD.json $(RESULTS))"

# Debian's armhf GNU tar and zstd, with the libraries they load, in one
# sysroot with a merged /usr that qemu-arm runs them from (-L): the peer of
# the arm berth in bench/unpack. (qemu-arm maps open() into the sysroot but
# not stat(), and the dynamic loader skips a search directory it cannot
# stat: with /lib a link to usr/lib, every library is found.)
ARMHF_TOOLS   := tar zstd libc6 libgcc-s1 libacl1 libselinux1 libpcre2-8-0 libzstd1 liblzma5 liblz4-1 zlib1g
ARMHF_SYSROOT := .cache/deb/armhf/sysroot
.PHONY: bench-armhf
bench-armhf: | host-deps
	@test -f $(ARMHF_SYSROOT)/.done || { \
	  for p in $(ARMHF_TOOLS); do scripts/fetch-deb.sh armhf .cache/deb/armhf/$$p $$p || exit 1; done; \
	  rm -rf $(ARMHF_SYSROOT) && mkdir -p $(ARMHF_SYSROOT)/usr/bin $(ARMHF_SYSROOT)/usr/sbin $(ARMHF_SYSROOT)/usr/lib && \
	  for d in bin sbin lib; do ln -s usr/$$d $(ARMHF_SYSROOT)/$$d; done && \
	  for p in $(ARMHF_TOOLS); do \
	    tar -C .cache/deb/armhf/$$p --exclude=./.fetched -cf - . | tar -C $(ARMHF_SYSROOT) --keep-directory-symlink -xf - || exit 1; \
	  done && touch $(ARMHF_SYSROOT)/.done; }

.PHONY: clean
clean:
	rm -rf out .cache/demo
