// Package mountinfo parses /proc/self/mountinfo, the kernel's list of the
// mounts in the calling process's mount namespace.
package mountinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo.
type Mount struct {
	// ID is the mount's ID, as statx's STATX_MNT_ID reports it.
	ID int
	// Dev is its filesystem's device, "major:minor": every mount of one
	// filesystem (a bind mount of any of its directories) has the same.
	Dev string
	// Root is the directory of its filesystem it shows, unescaped ("/"
	// unless a bind mount of a subdirectory).
	Root string
	// Point is where it is mounted, unescaped.
	Point string
	// Options are the mount's own options, comma-separated ("ro,nosuid").
	Options string
	// FSType is the filesystem type ("proc", "cgroup2", "rootfs", ...).
	FSType string
	// Source is the mount source ("proc", "/dev/vda1", ...).
	Source string
	// Super is the superblock's options, comma-separated.
	Super string
}

// Read returns the mounts of the calling process, in mount order.
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	ms, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return ms, nil
}

// Parse parses mountinfo text:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Optional fields (master:1 ...) end at the "-" separator.
func Parse(r io.Reader) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) {
			continue
		}
		id, _ := strconv.Atoi(fields[0])
		out = append(out, Mount{
			ID:      id,
			Dev:     fields[2],
			Root:    Unescape(fields[3]),
			Point:   Unescape(fields[4]),
			Options: fields[5],
			FSType:  fields[sep+1],
			Source:  Unescape(fields[sep+2]),
			Super:   fields[sep+3],
		})
	}
	return out, sc.Err()
}

// Unescape undoes the octal escapes (\040 for a space) of mountinfo fields.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
