//go:build riscv64

package seccomp

import (
	"berth/container/seccomp/internal/sysnum/riscv64"
)

// The tables a riscv64 binary needs.
func init() {
	registerTable("riscv64", riscv64.Names, riscv64.Numbers, riscv64.ByNumber)
}
