//go:build arm64

package seccomp

import (
	"berth/container/seccomp/internal/sysnum/aarch64"
	"berth/container/seccomp/internal/sysnum/arm"
)

// The tables an arm64 binary needs.
func init() {
	registerTable("aarch64", aarch64.Names, aarch64.Numbers, aarch64.ByNumber)
	registerTable("arm", arm.Names, arm.Numbers, arm.ByNumber)
}
