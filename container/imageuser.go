package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth/internal/regfile"
)

// maxIDFile bounds the bytes of an image's /etc/passwd or /etc/group that
// LookupUser reads.
const maxIDFile = 1 << 20

// LookupUser resolves an image's user, docker's "USER[:GROUP]" where each
// is a name or a number, against the /etc/passwd and /etc/group of the
// root filesystem rootfs:
//
//   - a name must be in the file, a number need not be;
//   - without GROUP the gid is the user's primary group from /etc/passwd,
//     or 0 for a number /etc/passwd does not list, as docker does;
//   - without GROUP the user's supplementary groups are the /etc/group
//     entries that list its name.
//
// The files are opened inside rootfs (openat2 RESOLVE_IN_ROOT: a symlink
// in the image cannot lead out), must be regular files, and are read up
// to 1 MiB.
func LookupUser(rootfs, spec string) (User, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return User{}, fmt.Errorf("user %q: want USER[:GROUP], names or numbers", spec)
	}
	root, err := os.Open(rootfs)
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", spec, err)
	}
	defer root.Close()
	var u User
	name := ""
	uid, numeric := parseID(userPart)
	pw, err := readIDFile(root, "etc/passwd")
	if err != nil && !(numeric && errors.Is(err, os.ErrNotExist)) {
		return User{}, fmt.Errorf("user %q: %w", spec, err)
	}
	ent, found := findEntry(pw, userPart, numeric, 2)
	switch {
	case found:
		name = ent[0]
		id, _ := parseID(ent[2])
		gid, _ := parseID(ent[3])
		u.UID, u.GID = id, gid
	case numeric:
		u.UID, u.GID = uid, 0
	default:
		return User{}, fmt.Errorf("user %q: no user %q in the image's /etc/passwd", spec, userPart)
	}
	gid, gnumeric := parseID(groupPart)
	if hasGroup && gnumeric {
		u.GID = gid
		return u, nil
	}
	gr, err := readIDFile(root, "etc/group")
	if err != nil && !(!hasGroup && errors.Is(err, os.ErrNotExist)) {
		return User{}, fmt.Errorf("user %q: %w", spec, err)
	}
	if hasGroup {
		ent, ok := findEntry(gr, groupPart, false, 1)
		if !ok {
			return User{}, fmt.Errorf("user %q: no group %q in the image's /etc/group", spec, groupPart)
		}
		u.GID, _ = parseID(ent[2])
		return u, nil
	}
	if name != "" {
		u.Groups = memberOf(gr, name, u.GID)
	}
	return u, nil
}

// parseID parses a uid or gid; ok is false for anything but a number.
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil && n <= MaxID
}

// readIDFile reads rel (etc/passwd, etc/group) inside root: resolved with
// RESOLVE_IN_ROOT to an O_PATH handle, required to be a regular file
// (never a device or a FIFO of the image), then read through that handle.
func readIDFile(root *os.File, rel string) ([]byte, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	fd, err := unix.Openat2(int(root.Fd()), rel, &how)
	if err != nil {
		return nil, fmt.Errorf("the image's /%s: %w", rel, &os.PathError{Op: "open", Path: "/" + rel, Err: err})
	}
	defer unix.Close(fd)
	b, err := regfile.Read(fd, maxIDFile)
	switch {
	case errors.Is(err, regfile.ErrNotRegular):
		return nil, fmt.Errorf("the image's /%s is not a regular file", rel)
	case errors.Is(err, regfile.ErrTooLarge):
		return nil, fmt.Errorf("the image's /%s is over the limit of %d bytes", rel, maxIDFile)
	case err != nil:
		return nil, fmt.Errorf("the image's /%s: %w", rel, err)
	}
	return b, nil
}

// findEntry finds the line of a passwd (ids in fields 2 and 3) or group
// file (id in field 2) whose name (field 0), or whose id (field 2) when
// numeric, is key. Lines with fewer than ids fields of ids, or an id that
// is no number, are skipped, as libc does.
func findEntry(file []byte, key string, numeric bool, ids int) ([]string, bool) {
	sc := bufio.NewScanner(bytes.NewReader(file))
	sc.Buffer(nil, maxIDFile)
lines:
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 2+ids {
			continue
		}
		for _, id := range f[2 : 2+ids] {
			if _, ok := parseID(id); !ok {
				continue lines
			}
		}
		if (numeric && f[2] == key) || (!numeric && f[0] == key) {
			return f, true
		}
	}
	return nil, false
}

// memberOf lists the gids of the groups of a group file that list name
// as a member, except primary, up to MaxGroups.
func memberOf(file []byte, name string, primary uint32) []uint32 {
	var out []uint32
	sc := bufio.NewScanner(bytes.NewReader(file))
	sc.Buffer(nil, maxIDFile)
	for sc.Scan() && len(out) < MaxGroups {
		f := strings.Split(sc.Text(), ":")
		if len(f) != 4 {
			continue
		}
		gid, ok := parseID(f[2])
		if !ok || gid == primary {
			continue
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == name {
				out = append(out, gid)
				break
			}
		}
	}
	return out
}
