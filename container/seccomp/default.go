package seccomp

import (
	"crypto/sha256"
	_ "embed"
	"fmt"
	"sync"
)

// defaultJSON is Docker's default seccomp profile, copied unchanged from
// github.com/moby/profiles seccomp/default.json (commit 02e898b1), which is
// Copyright Docker, Inc. and licensed under the Apache License 2.0.
//
//go:embed default.json
var defaultJSON []byte

// Default returns Docker's default profile: an allow-list whose other
// system calls fail with EPERM, with rules that depend on the container's
// capabilities (CAP_SYS_ADMIN allows mount, unshare, clone with namespace
// flags...), on the architecture and on the kernel version (ptrace from
// 4.8). Each call returns a new Profile the caller may change.
func Default() *Profile {
	p, err := Parse(defaultJSON)
	if err != nil {
		// The embedded profile is tested; this is a build defect.
		panic(fmt.Sprintf("seccomp: embedded default profile: %v", err))
	}
	return p
}

// DefaultJSON returns Docker's default profile as embedded, for callers
// that key caches on a profile's bytes.
func DefaultJSON() []byte { return append([]byte(nil), defaultJSON...) }

// defaultSumInit computes DefaultSum's value, once.
func defaultSumInit() [sha256.Size]byte { return sha256.Sum256(defaultJSON) }

// defaultSumOnce holds its result: a sync.OnceValue variable would be init
// code run in every berth process; a sync.Once is data.
var defaultSumOnce struct {
	sync.Once
	v [sha256.Size]byte
}

// DefaultSum is the SHA-256 of DefaultJSON, computed on first use
// without copying the profile.
func DefaultSum() [sha256.Size]byte {
	defaultSumOnce.Do(func() { defaultSumOnce.v = defaultSumInit() })
	return defaultSumOnce.v
}
