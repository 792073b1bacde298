package board

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Block device probing without udev or blkid: what a filesystem's
// superblock says about it (type, label, UUID), and the partitions a GPT
// lists (number, name, unique GUID). Every read is a fixed, bounded pread;
// a field that does not hold what its format promises makes the device
// unrecognised, never a panic or an allocation sized by the device.
//
// Recognised: ext2, ext3 and ext4 (one superblock format) and FAT12/16/32
// (vfat: the label and volume id of the boot sector, as mkfs.vfat writes
// them). Others are found by PARTLABEL=, PARTUUID= or their path.

// FSInfo is what a filesystem's superblock says about it.
type FSInfo struct {
	Type  string `json:"type"`            // ext2, ext3, ext4 or vfat
	Label string `json:"label,omitempty"` // "" when it has none
	UUID  string `json:"uuid,omitempty"`  // as blkid prints it
}

// The ext superblock: 1024 bytes from byte 1024.
const (
	extSuperOffset = 1024
	extMagic       = 0xEF53
	extCompatJour  = 0x4        // has_journal
	extIncompat4   = 0x2c0      // extents, 64bit, flex_bg
	extROCompat4   = 0x8 | 0x40 // huge_file, dir_nlink
)

// probeFS reads the filesystem signature of the device r: ext2/3/4 or
// FAT. ok is false when it is neither (or cannot be read).
func probeFS(r io.ReaderAt) (info FSInfo, ok bool) {
	if info, ok = probeExt(r); ok {
		return info, true
	}
	return probeFAT(r)
}

// probeExt reads an ext2/3/4 superblock.
func probeExt(r io.ReaderAt) (FSInfo, bool) {
	var sb [1024]byte
	if _, err := r.ReadAt(sb[:], extSuperOffset); err != nil {
		return FSInfo{}, false
	}
	le := binary.LittleEndian
	if le.Uint16(sb[56:]) != extMagic {
		return FSInfo{}, false
	}
	compat, incompat, rocompat := le.Uint32(sb[92:]), le.Uint32(sb[96:]), le.Uint32(sb[100:])
	typ := "ext2"
	switch {
	case incompat&extIncompat4 != 0 || rocompat&extROCompat4 != 0:
		typ = "ext4"
	case compat&extCompatJour != 0:
		typ = "ext3"
	}
	return FSInfo{Type: typ, Label: nulString(sb[120:136]), UUID: uuidString(sb[104:120])}, true
}

// probeFAT reads a FAT boot sector: FAT32's extended BPB at 64, FAT12/16's
// at 36, each with its boot signature 0x29 and an "FAT" type string.
func probeFAT(r io.ReaderAt) (FSInfo, bool) {
	var bs [512]byte
	if _, err := r.ReadAt(bs[:], 0); err != nil {
		return FSInfo{}, false
	}
	le := binary.LittleEndian
	bps, spc := le.Uint16(bs[11:]), bs[13]
	switch {
	case bs[510] != 0x55 || bs[511] != 0xAA, bs[0] != 0xEB && bs[0] != 0xE9:
		return FSInfo{}, false
	case bps < 512 || bps > 4096 || bps&(bps-1) != 0, spc == 0 || spc&(spc-1) != 0:
		return FSInfo{}, false
	case le.Uint16(bs[14:]) == 0 || bs[16] == 0: // reserved sectors, FATs
		return FSInfo{}, false
	}
	ext := 36 // FAT12/16
	if le.Uint16(bs[22:]) == 0 {
		ext = 64 // FAT32: no 16-bit FAT size
	}
	if bs[ext+2] != 0x29 || !bytes.HasPrefix(bs[ext+18:ext+26], []byte("FAT")) {
		return FSInfo{}, false
	}
	id := le.Uint32(bs[ext+3:])
	label := strings.TrimRight(string(bs[ext+7:ext+18]), " \x00")
	if label == "NO NAME" {
		label = ""
	}
	return FSInfo{Type: "vfat", Label: label, UUID: fmt.Sprintf("%04X-%04X", id>>16, id&0xffff)}, true
}

// GPTPartition is one used entry of a GUID partition table.
type GPTPartition struct {
	Number int    // 1-based, as Linux numbers the partition devices
	Name   string // PARTLABEL
	UUID   string // PARTUUID, lower case
}

// Bounds of a GPT berth reads: the header fits a sector; the entry array,
// normally 128 entries of 128 bytes, is refused beyond 1 MiB.
const (
	gptMinEntry      = 128
	gptMaxEntry      = 4096
	gptMaxEntryBytes = 1 << 20
)

var errNoGPT = errors.New("no GPT")

// readGPT reads the primary GPT of the whole disk r, whose logical block
// size is sector. Both CRCs must hold.
func readGPT(r io.ReaderAt, sector int64) ([]GPTPartition, error) {
	if sector < 512 || sector > 65536 || sector&(sector-1) != 0 {
		return nil, fmt.Errorf("GPT: block size %d", sector)
	}
	hdr := make([]byte, sector)
	if _, err := r.ReadAt(hdr, sector); err != nil {
		return nil, errNoGPT
	}
	le := binary.LittleEndian
	if string(hdr[:8]) != "EFI PART" {
		return nil, errNoGPT
	}
	size := le.Uint32(hdr[12:])
	if size < 92 || int64(size) > sector {
		return nil, fmt.Errorf("GPT: header size %d", size)
	}
	want := le.Uint32(hdr[16:])
	h := append([]byte(nil), hdr[:size]...)
	clear(h[16:20])
	if crc32.ChecksumIEEE(h) != want {
		return nil, errors.New("GPT: header CRC does not match")
	}
	lba, n, esize := le.Uint64(hdr[72:]), le.Uint32(hdr[80:]), le.Uint32(hdr[84:])
	switch {
	case esize < gptMinEntry || esize > gptMaxEntry || esize%8 != 0:
		return nil, fmt.Errorf("GPT: entry size %d", esize)
	case uint64(n)*uint64(esize) > gptMaxEntryBytes:
		return nil, fmt.Errorf("GPT: %d entries of %d bytes: more than %d bytes", n, esize, gptMaxEntryBytes)
	case lba < 2 || lba > (1<<62)/uint64(sector):
		return nil, fmt.Errorf("GPT: entries at block %d", lba)
	}
	ents := make([]byte, int(n)*int(esize))
	if _, err := r.ReadAt(ents, int64(lba)*sector); err != nil {
		return nil, fmt.Errorf("GPT: read %d entries: %w", n, err)
	}
	if crc32.ChecksumIEEE(ents) != le.Uint32(hdr[88:]) {
		return nil, errors.New("GPT: partition entries' CRC does not match")
	}
	var parts []GPTPartition
	for i := 0; i < int(n); i++ {
		e := ents[i*int(esize) : (i+1)*int(esize)]
		if isZero(e[:16]) { // type GUID: unused entry
			continue
		}
		parts = append(parts, GPTPartition{Number: i + 1, Name: utf16String(e[56:128]), UUID: guidString(e[16:32])})
	}
	return parts, nil
}

// nulString is a NUL-padded string field.
func nulString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// utf16String decodes a NUL-padded UTF-16LE field.
func utf16String(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// uuidString formats 16 bytes in order, as ext's UUID is stored.
func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// guidString formats a GUID as stored on disk: its first three fields
// little-endian.
func guidString(b []byte) string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%x-%x",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8:10], b[10:16])
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
