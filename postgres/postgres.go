// Package postgres connects Tally to its database: it creates the database
// named in DATABASE_URL when it is missing and applies the embedded migrations
// in order under an advisory lock, so several instances may start at once.
package postgres

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLockKey is the advisory lock every migrating instance takes; any
// fixed number unlikely to collide with another application's lock.
const migrationLockKey = 0x7a11_0001

// Open connects to the database in url, creating the database first when it
// does not exist, and checks that it answers. It does not migrate.
func Open(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if err := EnsureDatabase(ctx, dbURL); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, unreachable(dbURL, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, unreachable(dbURL, err)
	}
	return pool, nil
}

// EnsureDatabase creates the database named in dbURL if it does not exist,
// connecting to the server's "postgres" database to do so. Two callers racing
// to create it both succeed.
func EnsureDatabase(ctx context.Context, dbURL string) error {
	// Parsed as a pool config so pool_* parameters (pool_max_conns) are taken
	// out rather than sent to the server as unknown settings.
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	cfg := pcfg.ConnConfig
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return unreachable(dbURL, err)
	}
	name := cfg.Database
	admin := cfg.Copy()
	admin.Database = "postgres"
	aconn, err := pgx.ConnectConfig(cctx, admin)
	if err != nil {
		return unreachable(dbURL, err)
	}
	defer aconn.Close(ctx)
	_, err = aconn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !errors.As(err, &pgErr) {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	// 42P04: exists already; 23505: a concurrent CREATE DATABASE won the race.
	if err != nil && pgErr.Code != "42P04" && pgErr.Code != "23505" {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// unreachable says which database failed and how to start one.
func unreachable(dbURL string, err error) error {
	return fmt.Errorf("cannot reach PostgreSQL at %s: %w\n"+
		"  start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"+
		"  or, with Docker: docker compose up -d postgres", Redact(dbURL), err)
}

// Redact hides the password in a connection URL so it can be logged.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Migration is one embedded schema change.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

// Migrations returns the embedded migrations in the order they apply.
func Migrations() ([]Migration, error) {
	entries, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, path := range entries {
		name := strings.TrimPrefix(path, "migrations/")
		var v int
		if _, err := fmt.Sscanf(name, "%d_", &v); err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version, e.g. 0002_tasks.sql", name)
		}
		body, err := migrationFS.ReadFile(path)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(body)
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(body), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].Name, ms[i].Name, ms[i].Version)
		}
	}
	return ms, nil
}

// Migrate applies the migrations not yet applied, in one transaction under an
// advisory lock: a second instance waits for the first and then finds nothing
// to do. It refuses to run when an applied migration's file has changed. It
// returns the names it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var applied []string
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT version, name, checksum FROM schema_migrations")
		if err != nil {
			return err
		}
		done := map[int]Migration{}
		for rows.Next() {
			var m Migration
			if err := rows.Scan(&m.Version, &m.Name, &m.Checksum); err != nil {
				return err
			}
			done[m.Version] = m
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, m := range ms {
			if d, ok := done[m.Version]; ok {
				if d.Checksum != m.Checksum {
					return fmt.Errorf("migration %s changed after it was applied (as %s); add a new migration instead of editing it", m.Name, d.Name)
				}
				continue
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
				m.Version, m.Name, m.Checksum); err != nil {
				return err
			}
			applied = append(applied, m.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return applied, nil
}

// SchemaChecksum identifies the whole embedded schema; test helpers name
// their template database after it.
func SchemaChecksum() (string, error) {
	ms, err := Migrations()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range ms {
		h.Write([]byte(m.Name + m.Checksum))
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
