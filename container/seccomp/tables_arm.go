//go:build arm

package seccomp

import (
	"berth/container/seccomp/internal/sysnum/arm"
)

// The tables an arm binary needs.
func init() {
	registerTable("arm", arm.Names, arm.Numbers, arm.ByNumber)
}
