package sqlconn

import "testing"

func TestSessionDSN(t *testing.T) {
	pg := dialects["postgres"]
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://u@h/db", "postgres://u@h/db?plan_cache_mode=force_generic_plan"},
		{"postgresql://u@h/db?sslmode=disable", "postgresql://u@h/db?sslmode=disable&plan_cache_mode=force_generic_plan"},
		{"host=h user=u dbname=db", "host=h user=u dbname=db plan_cache_mode=force_generic_plan"},
		{"postgres://u@h/db?plan_cache_mode=auto", "postgres://u@h/db?plan_cache_mode=auto"},
		{"host=h options='-c plan_cache_mode=force_custom_plan'", "host=h options='-c plan_cache_mode=force_custom_plan'"},
		{"postgres://u@h:notaport/db", "postgres://u@h:notaport/db"}, // the driver refuses it, as given
	} {
		if got := pg.sessionDSN(tc.dsn); got != tc.want {
			t.Errorf("sessionDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
	for _, name := range []string{"mysql", "sqlite"} {
		if dsn := "x?y=1"; dialects[name].sessionDSN(dsn) != dsn {
			t.Errorf("%s: the DSN changed", name)
		}
	}
}
