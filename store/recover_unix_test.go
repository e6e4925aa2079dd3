//go:build unix

package store

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRecoverKeepsTheAgentsOwner: root runs recover on the data dir of an
// agent that runs as another user; the restored store must stay that user's.
func TestRecoverKeepsTheAgentsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files another owner")
	}
	const uid, gid = 4242, 4343
	dir, _, _ := damagedStore(t, true, damages[0].damage)
	for _, name := range []string{FileName, LastGoodFileName} {
		if err := os.Chown(filepath.Join(dir, name), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Recover(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(rep.Path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
		t.Errorf("restored store owned by %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}
