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
// lists (number, name, unique GUID, blocks), of a GPT the kernel reads
// too. Every read is a fixed, bounded pread; a field that does not hold
// what its format promises makes the device unrecognised, never a panic
// or an allocation sized by the device.
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
	First  uint64 // its first logical block
	Last   uint64 // its last logical block, First or after
}

// Bounds of a GPT berth reads: the header fits a block; the entry array,
// normally 128 entries, is refused beyond 1 MiB. An entry is 128 bytes,
// the only size the kernel takes (block/partitions/efi.c).
const (
	gptEntrySize     = 128
	gptMaxEntryBytes = 1 << 20
)

var errNoGPT = errors.New("no GPT")

// gptHeader is what berth takes from a primary GPT header.
type gptHeader struct {
	firstUsable, lastUsable uint64 // the blocks partitions may cover
	entriesLBA              uint64
	entries                 uint32 // how many
	entriesCRC              uint32
}

// readGPT reads the primary GPT of the whole disk r, of size bytes in
// logical blocks of sector bytes, by the kernel's rules for a primary
// GPT: after a protective MBR (or a hybrid one), a header at block 1
// whose CRC holds, entries of 128 bytes whose CRC holds. A GPT the
// kernel would not take is an error. An entry that ends before it starts
// or past the disk's last block is skipped, as the kernel skips it
// (is_pte_valid): it makes no partition. berth does not read the backup
// GPT the kernel falls back to when the primary is damaged; and whatever
// the entry says, the kernel's partition must match it (gptMatches).
func readGPT(r io.ReaderAt, sector, size int64) ([]GPTPartition, error) {
	h, err := readGPTHeader(r, sector, size)
	if err != nil {
		return nil, err
	}
	ents := make([]byte, int(h.entries)*gptEntrySize)
	if _, err := r.ReadAt(ents, int64(h.entriesLBA)*sector); err != nil {
		return nil, fmt.Errorf("GPT: read %d entries: %w", h.entries, err)
	}
	if crc32.ChecksumIEEE(ents) != h.entriesCRC {
		return nil, errors.New("GPT: partition entries' CRC does not match")
	}
	le := binary.LittleEndian
	lastLBA := uint64(size/sector) - 1
	var parts []GPTPartition
	for i := 0; i < int(h.entries); i++ {
		e := ents[i*gptEntrySize : (i+1)*gptEntrySize]
		if isZero(e[:16]) { // type GUID: unused entry
			continue
		}
		p := GPTPartition{Number: i + 1, Name: utf16String(e[56:128]), UUID: guidString(e[16:32]),
			First: le.Uint64(e[32:]), Last: le.Uint64(e[40:])}
		if p.First > p.Last || p.Last > lastLBA {
			continue
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// readGPTHeader reads and checks the primary GPT header of r (see
// readGPT). No "EFI PART" signature at block 1 is errNoGPT.
func readGPTHeader(r io.ReaderAt, sector, size int64) (gptHeader, error) {
	if sector < 512 || sector > 65536 || sector&(sector-1) != 0 {
		return gptHeader{}, fmt.Errorf("GPT: block size %d", sector)
	}
	hdr := make([]byte, sector)
	if _, err := r.ReadAt(hdr, sector); err != nil || string(hdr[:8]) != "EFI PART" {
		return gptHeader{}, errNoGPT
	}
	if !protectiveMBR(r) {
		return gptHeader{}, errors.New("GPT: no protective MBR (an MBR partition of type 0xEE from block 1): the kernel does not read this GPT")
	}
	le := binary.LittleEndian
	hsize := le.Uint32(hdr[12:])
	if hsize < 92 || int64(hsize) > sector {
		return gptHeader{}, fmt.Errorf("GPT: header size %d", hsize)
	}
	want := le.Uint32(hdr[16:])
	c := append([]byte(nil), hdr[:hsize]...)
	clear(c[16:20])
	if crc32.ChecksumIEEE(c) != want {
		return gptHeader{}, errors.New("GPT: header CRC does not match")
	}
	h := gptHeader{firstUsable: le.Uint64(hdr[40:]), lastUsable: le.Uint64(hdr[48:]),
		entriesLBA: le.Uint64(hdr[72:]), entries: le.Uint32(hdr[80:]), entriesCRC: le.Uint32(hdr[88:])}
	lastLBA := uint64(size/sector) - 1
	switch esize := le.Uint32(hdr[84:]); {
	case le.Uint64(hdr[24:]) != 1:
		return gptHeader{}, fmt.Errorf("GPT: the header at block 1 says it is at block %d", le.Uint64(hdr[24:]))
	case size < 2*sector:
		return gptHeader{}, fmt.Errorf("GPT: disk of %d bytes", size)
	case h.firstUsable > h.lastUsable || h.lastUsable > lastLBA:
		return gptHeader{}, fmt.Errorf("GPT: usable blocks %d-%d, on a disk of blocks 0-%d", h.firstUsable, h.lastUsable, lastLBA)
	case esize != gptEntrySize:
		return gptHeader{}, fmt.Errorf("GPT: entry size %d, not %d", esize, gptEntrySize)
	case uint64(h.entries)*gptEntrySize > gptMaxEntryBytes:
		return gptHeader{}, fmt.Errorf("GPT: %d entries of %d bytes: more than %d bytes", h.entries, gptEntrySize, gptMaxEntryBytes)
	case h.entriesLBA < 2 || h.entriesLBA > (1<<62)/uint64(sector):
		return gptHeader{}, fmt.Errorf("GPT: entries at block %d", h.entriesLBA)
	}
	return h, nil
}

// protectiveMBR reports whether block 0 of r holds an MBR with a
// partition of type 0xEE starting at block 1, as the kernel requires
// before it reads a GPT (is_pmbr_valid): a protective MBR, or a hybrid
// one with other partitions beside it.
func protectiveMBR(r io.ReaderAt) bool {
	var mbr [512]byte
	if _, err := r.ReadAt(mbr[:], 0); err != nil || mbr[510] != 0x55 || mbr[511] != 0xAA {
		return false
	}
	for i := range 4 {
		rec := mbr[446+16*i : 446+16*(i+1)]
		if rec[4] == 0xEE && binary.LittleEndian.Uint32(rec[8:]) == 1 {
			return true
		}
	}
	return false
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
