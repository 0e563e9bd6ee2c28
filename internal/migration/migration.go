// Package migration reads embedded SQL migrations: files named
// NNN_name.sql, applied in the order of their numbers. The SQLite databases
// (internal/sqlitedb) and the PostgreSQL store apply them each in their own
// way, under their own locks; the naming rule and its checks are this one.
package migration

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// File is one migration.
type File struct {
	// Version is the number its name starts with.
	Version int
	// Name is its path in the file system it was read from.
	Name string
	// SQL is its content.
	SQL string
}

// Read returns the migrations of fsys whose paths match pattern (e.g.
// "migrations/*.sql"), by version. A name that does not start with a
// positive number and '_', or two files with one number, is an error: the
// order would be a guess.
func Read(fsys fs.FS, pattern string) ([]File, error) {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return nil, err
	}
	var files []File
	for _, n := range names {
		num, _, _ := strings.Cut(path.Base(n), "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", n)
		}
		body, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Version: v, Name: n, SQL: string(body)})
	}
	slices.SortFunc(files, func(a, b File) int { return a.Version - b.Version })
	for i := 1; i < len(files); i++ {
		if files[i].Version == files[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", files[i-1].Name, files[i].Name, files[i].Version)
		}
	}
	return files, nil
}
