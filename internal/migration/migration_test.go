package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadOrdersByNumber(t *testing.T) {
	fsys := fstest.MapFS{
		"m/010_later.sql": {Data: []byte("C")},
		"m/2_second.sql":  {Data: []byte("B")},
		"m/001_first.sql": {Data: []byte("A")},
		"m/README":        {Data: []byte("not a migration")},
	}
	fs, err := Read(fsys, "m/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Name+"="+f.SQL)
	}
	if strings.Join(got, " ") != "m/001_first.sql=A m/2_second.sql=B m/010_later.sql=C" || fs[2].Version != 10 {
		t.Fatalf("Read = %v", fs)
	}
}

func TestReadRefusesAmbiguousNames(t *testing.T) {
	for _, tc := range []struct {
		files fstest.MapFS
		want  string
	}{
		{fstest.MapFS{"init.sql": {}}, "init.sql: name must start with a positive number"},
		{fstest.MapFS{"0_zero.sql": {}}, "0_zero.sql: name must start with a positive number"},
		{fstest.MapFS{"1_a.sql": {}, "01_b.sql": {}}, "share version 1"},
	} {
		if _, err := Read(tc.files, "*.sql"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.files, err, tc.want)
		}
	}
}
