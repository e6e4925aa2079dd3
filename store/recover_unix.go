//go:build unix

package store

import (
	"fmt"
	"os"
	"syscall"
)

// chownLike gives the file at path the owner and group of like, so that a
// store restored by root stays readable by the agent's user.
func chownLike(path string, like os.FileInfo) error {
	want, ok := like.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if got, ok := fi.Sys().(*syscall.Stat_t); ok && got.Uid == want.Uid && got.Gid == want.Gid {
		return nil
	}
	if err := os.Chown(path, int(want.Uid), int(want.Gid)); err != nil {
		return fmt.Errorf("give it the owner of %s (uid %d, gid %d; run as root or as that user): %w", like.Name(), want.Uid, want.Gid, err)
	}
	return nil
}
