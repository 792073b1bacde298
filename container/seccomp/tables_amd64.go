//go:build amd64

package seccomp

import (
	"berth/container/seccomp/internal/sysnum/i386"
	"berth/container/seccomp/internal/sysnum/x32"
	"berth/container/seccomp/internal/sysnum/x86_64"
)

// The tables an amd64 binary needs.
func init() {
	registerTable("i386", i386.Names, i386.Numbers, i386.ByNumber)
	registerTable("x32", x32.Names, x32.Numbers, x32.ByNumber)
	registerTable("x86_64", x86_64.Names, x86_64.Numbers, x86_64.ByNumber)
}
