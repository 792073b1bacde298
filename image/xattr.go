package image

import (
	"archive/tar"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Extended attributes travel in PAX records named SCHILY.xattr.NAME, as GNU
// tar and bsdtar write them. berth keeps only:
//
//   - user.*: the owner's own attributes;
//   - trusted.*: only when running as root (only root may set or read them);
//   - security.capability: file capabilities, which packages such as ping
//     rely on (setting them needs CAP_SETFCAP; without it a warning).
//
// Everything else is dropped with a warning, notably security.selinux,
// security.ima, security.evm and security.apparmor (labels of the machine
// that built the image, wrong or dangerous on another), and
// system.posix_acl_* (ACLs name host uids and gids). Attributes are set on
// regular files and directories; symlinks, device nodes and fifos get none
// (berth opens none of them, and setting them by name would follow
// symlinks).
const xattrPrefix = "SCHILY.xattr."

// keepXattr reports whether the attribute name passes berth's filter.
func keepXattr(name string, asRoot bool) bool {
	switch {
	case strings.HasPrefix(name, "user."):
		return true
	case strings.HasPrefix(name, "trusted."):
		return asRoot
	}
	return name == "security.capability"
}

// setXattrs sets the attributes of hdr that pass the filter on fd. A
// failure is a warning, not an error: a filesystem without xattr support
// still gets the files, as with GNU tar.
func (x *extractor) setXattrs(fd int, hdr *tar.Header) {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok {
			continue
		}
		if !keepXattr(name, x.asRoot) {
			x.warnOnce("xattr "+name, fmt.Sprintf("not setting extended attribute %s (filtered)", name))
			continue
		}
		if err := unix.Fsetxattr(fd, name, []byte(v), 0); err != nil {
			x.warnOnce("xattr-err "+name, fmt.Sprintf("cannot set extended attribute %s on %q: %v", name, hdr.Name, err))
		}
	}
}

// readXattrs returns the attributes of the file open at fd that pass the
// filter, as PAX records, or nil. Packing keeps what unpacking would set.
func readXattrs(fd int) (map[string]string, error) {
	size, err := unix.Flistxattr(fd, nil)
	if err != nil || size == 0 {
		if err == unix.ENOTSUP || err == unix.ENODATA {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	if size, err = unix.Flistxattr(fd, buf); err != nil {
		return nil, err
	}
	var out map[string]string
	for name := range strings.SplitSeq(string(buf[:size]), "\x00") {
		if name == "" || !keepXattr(name, true) {
			continue
		}
		vsize, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			continue // removed meanwhile, or unreadable: left out
		}
		val := make([]byte, vsize)
		if vsize, err = unix.Fgetxattr(fd, name, val); err != nil {
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[xattrPrefix+name] = string(val[:vsize])
	}
	return out, nil
}
