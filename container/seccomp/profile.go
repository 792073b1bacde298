package seccomp

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// A Profile is a seccomp profile in Docker's JSON format (moby's
// profiles/seccomp types, a superset of the OCI runtime spec's
// LinuxSeccomp). Field names follow the JSON keys.
type Profile struct {
	DefaultAction   Action `json:"defaultAction"`
	DefaultErrnoRet *uint  `json:"defaultErrnoRet,omitempty"`

	// Architectures lists SCMP_ARCH_* names the filter accepts besides
	// the native one. ArchMap is Docker's alternative: the entry whose
	// architecture is the native one adds its subArchitectures. A profile
	// sets at most one of the two; with neither, only the native
	// architecture passes.
	Architectures []string       `json:"architectures,omitempty"`
	ArchMap       []ArchMapEntry `json:"archMap,omitempty"`

	// Flags are SECCOMP_FILTER_FLAG_* names; see FilterFlags.
	Flags []string `json:"flags,omitempty"`

	// ListenerPath and ListenerMetadata belong to SCMP_ACT_NOTIFY, which
	// this package rejects; they are parsed only to say so clearly.
	ListenerPath     string `json:"listenerPath,omitempty"`
	ListenerMetadata string `json:"listenerMetadata,omitempty"`

	Syscalls []Syscall `json:"syscalls"`
}

// An ArchMapEntry maps a native architecture to the ones it also runs.
type ArchMapEntry struct {
	Arch      string   `json:"architecture"`
	SubArches []string `json:"subArchitectures"`
}

// A Syscall is one rule: the named system calls get Action when every one
// of Args matches. Includes and Excludes make the rule conditional on the
// target's architecture, capabilities and kernel version.
type Syscall struct {
	Names    []string `json:"names,omitempty"`
	Name     string   `json:"name,omitempty"` // older single-name form
	Action   Action   `json:"action"`
	ErrnoRet *uint    `json:"errnoRet,omitempty"`
	Args     []Arg    `json:"args,omitempty"`
	Comment  string   `json:"comment,omitempty"`
	Includes *Filter  `json:"includes,omitempty"`
	Excludes *Filter  `json:"excludes,omitempty"`
}

// allNames returns the rule's system call names in either form.
func (s *Syscall) allNames() []string {
	if s.Name != "" {
		return append([]string{s.Name}, s.Names...)
	}
	return s.Names
}

// An Arg compares argument Index (0-5) of the system call.
type Arg struct {
	Index    uint     `json:"index"`
	Value    uint64   `json:"value"`
	ValueTwo uint64   `json:"valueTwo,omitempty"`
	Op       Operator `json:"op"`
}

// A Filter is a rule's includes or excludes clause. Includes applies the
// rule only when the target's GOARCH is in Arches (if any), it holds every
// capability in Caps, and the kernel is at least MinKernel (if set).
// Excludes skips the rule when the GOARCH is in Arches, the target holds
// any capability in Caps, or the kernel is at least MinKernel.
type Filter struct {
	Caps      []string       `json:"caps,omitempty"`
	Arches    []string       `json:"arches,omitempty"`
	MinKernel *KernelVersion `json:"minKernel,omitempty"`
}

// A KernelVersion is a Linux "major.minor" version, "4.8" in JSON.
type KernelVersion struct {
	Major, Minor int
}

// String returns "major.minor".
func (v KernelVersion) String() string {
	return fmt.Sprintf("%d.%d", v.Major, v.Minor)
}

// AtLeast reports whether v is the same as or newer than want.
func (v KernelVersion) AtLeast(want KernelVersion) bool {
	if v.Major != want.Major {
		return v.Major > want.Major
	}
	return v.Minor >= want.Minor
}

// ParseKernelVersion parses "major.minor", ignoring anything after the
// minor number's digits ("6.1.0-13-amd64" is 6.1).
func ParseKernelVersion(s string) (KernelVersion, error) {
	major, rest, ok := strings.Cut(s, ".")
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end >= 0 {
		rest = rest[:end]
	}
	maj, err1 := strconv.Atoi(major)
	minor, err2 := strconv.Atoi(rest)
	if !ok || err1 != nil || err2 != nil || maj < 0 || minor < 0 {
		return KernelVersion{}, fmt.Errorf("bad kernel version %q, want major.minor", s)
	}
	return KernelVersion{Major: maj, Minor: minor}, nil
}

// MarshalJSON writes the version as a "major.minor" string.
func (v KernelVersion) MarshalJSON() ([]byte, error) {
	return json.Marshal(v.String())
}

// UnmarshalJSON reads a "major.minor" string.
func (v *KernelVersion) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("minKernel: want a \"major.minor\" string")
	}
	kv, err := ParseKernelVersion(s)
	if err != nil {
		return fmt.Errorf("minKernel: %w", err)
	}
	*v = kv
	return nil
}
