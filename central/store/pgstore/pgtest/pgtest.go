// Package pgtest gives tests a PostgreSQL schema of their own on the
// database named by PARKING_TEST_POSTGRES_DSN, and skips them when it is
// unset, so that `make test` passes on a machine with only Go while CI
// (which sets it) runs them. A schema per test keeps runs, and packages
// testing at once, from seeing each other; it is dropped when the test
// ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvDSN is the variable that names the test database.
const EnvDSN = "PARKING_TEST_POSTGRES_DSN"

// BaseDSN returns the test database's DSN, or skips the test.
func BaseDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		t.Skip(EnvDSN + " not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable): skipping a test that needs PostgreSQL")
	}
	return dsn
}

// Schema creates an empty schema and returns a DSN whose search_path
// starts with it, and its name; the schema is dropped when the test ends.
// public stays on the path, where a DBA's extensions usually are.
func Schema(t testing.TB) (dsn, schema string) {
	t.Helper()
	base := BaseDSN(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema = "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("%s: %v", EnvDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return WithSearchPath(t, base, schema+",public"), schema
}

// WithSearchPath returns dsn with its search_path set to path.
func WithSearchPath(t testing.TB, dsn, path string) string {
	t.Helper()
	return WithSettings(t, dsn, "search_path", path)
}

// WithSettings returns dsn with the given run-time settings (name, value,
// name, value, …), which pgx sends when it connects.
func WithSettings(t testing.TB, dsn string, nameValues ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL (got %q: %v)", EnvDSN, dsn, err)
	}
	if len(nameValues)%2 != 0 {
		t.Fatalf("WithSettings: %q is not pairs of name and value", nameValues)
	}
	q := u.Query()
	for i := 0; i < len(nameValues); i += 2 {
		q.Set(nameValues[i], nameValues[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}
