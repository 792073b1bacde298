package appliance

import (
	"fmt"
	"io"
)

// Mode bits of a newc record's file type (stat(2)'s S_IF*).
const (
	modeFmt = 0o170000
	modeDir = 0o040000
	modeReg = 0o100000
	modeChr = 0o020000
)

// newcTrailer is the name of the record that ends a newc archive.
const newcTrailer = "TRAILER!!!"

// newcWriter writes a newc cpio archive, the format the kernel unpacks
// an initramfs from (the kernel's
// Documentation/driver-api/early-userspace/buffer-format.rst): each
// record is "070701", 13 fields of 8 upper-case hex digits, the name
// with its NUL, then the data, name and data each padded to 4 bytes.
// Owners, devices and checksums are 0.
type newcWriter struct {
	w   io.Writer
	pos int64
}

// newcRecord is a record's header: its name and the fields berth sets.
type newcRecord struct {
	name                          string
	ino, mode, nlink, mtime, size uint64
	rmajor, rminor                uint64
}

// header writes r's header and name, padded.
func (w *newcWriter) header(r newcRecord) error {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, 110+len(r.name)+4)
	b = append(b, "070701"...)
	fields := [13]uint64{r.ino, r.mode, 0, 0, r.nlink, r.mtime, r.size, 0, 0, r.rmajor, r.rminor, uint64(len(r.name)) + 1, 0}
	for i, v := range fields {
		if v > 1<<32-1 {
			return fmt.Errorf("cpio field %d of %s: %d does not fit in 32 bits", i, r.name, v)
		}
		for shift := 28; shift >= 0; shift -= 4 {
			b = append(b, hex[v>>shift&0xf])
		}
	}
	b = append(b, r.name...)
	b = append(b, 0)
	return w.write(b)
}

// write writes b and the zeros that pad the archive to 4 bytes.
func (w *newcWriter) write(b []byte) error {
	if pad := -(w.pos + int64(len(b))) & 3; pad != 0 {
		b = append(b, make([]byte, pad)...)
	}
	n, err := w.w.Write(b)
	w.pos += int64(n)
	return err
}

// record writes a record without data: a directory, a device.
func (w *newcWriter) record(r newcRecord) error {
	r.size = 0
	return w.header(r)
}

// file writes a regular file's record whose r.size bytes of data are
// read from data; data holding more or fewer is an error.
func (w *newcWriter) file(r newcRecord, data io.Reader) error {
	if err := w.header(r); err != nil {
		return err
	}
	n, err := io.Copy(w.w, io.LimitReader(data, int64(r.size)+1))
	w.pos += n
	if err != nil {
		return err
	}
	if n != int64(r.size) {
		return fmt.Errorf("%s: %d bytes of data, not %d", r.name, n, r.size)
	}
	return w.write(nil)
}

// trailer writes the record that ends the archive.
func (w *newcWriter) trailer() error {
	return w.header(newcRecord{name: newcTrailer})
}
