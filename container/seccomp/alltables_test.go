package seccomp

import (
	"berth/container/seccomp/internal/sysnum/aarch64"
	"berth/container/seccomp/internal/sysnum/arm"
	"berth/container/seccomp/internal/sysnum/i386"
	"berth/container/seccomp/internal/sysnum/riscv64"
	"berth/container/seccomp/internal/sysnum/x32"
	"berth/container/seccomp/internal/sysnum/x86_64"
)

// The tests compile for every GOARCH, so they link every table.
func init() {
	registerTable("x86_64", x86_64.Names, x86_64.Numbers, x86_64.ByNumber)
	registerTable("i386", i386.Names, i386.Numbers, i386.ByNumber)
	registerTable("x32", x32.Names, x32.Numbers, x32.ByNumber)
	registerTable("aarch64", aarch64.Names, aarch64.Numbers, aarch64.ByNumber)
	registerTable("arm", arm.Names, arm.Numbers, arm.ByNumber)
	registerTable("riscv64", riscv64.Names, riscv64.Numbers, riscv64.ByNumber)
}
