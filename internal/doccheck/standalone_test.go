package doccheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The repository's code, docs and configs stand on their own: none of them
// points at a specification kept elsewhere; they say the thing itself.
func TestNoReferenceToAnOutsideSpecification(t *testing.T) {
	outside := "PRODUCT" + ".md" // spelled in two parts so that this file passes
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "bin" || n == "var" || n == "dist") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".yaml", ".yml", ".sh", ".service", ".conf", ".cfg", ".acl", ".sql", ".html", ".js", ".css":
		default:
			if filepath.Base(path) != "Makefile" {
				return nil
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), outside) {
			t.Errorf("%s refers to %s", path, outside)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
