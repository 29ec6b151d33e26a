#!/usr/bin/env bash
# cordon's escape suite: the sandbox tests of package runtime, run
#   1. as the current user, in namespace mode;
#   2. as the current user, in fallback mode (Landlock and seccomp without namespaces);
#   3. when run as root, also as an unprivileged user (created if missing), in both modes.
# Real users are not root: a test must not pass only because it runs as root.
#
# Every test that needs a kernel feature fails instead of skipping (CORDON_TEST_REQUIRE=1);
# set CORDON_TEST_REQUIRE=0 to let them skip on a machine that lacks them. Exits non-zero if
# any run fails.
#
# Environment: GO (default go), CORDON_TEST_USER (default cordon-test), CORDON_TEST_RUN (a
# -test.run pattern), CORDON_TEST_VERBOSE=1 for -test.v.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
user=${CORDON_TEST_USER:-cordon-test}
export CORDON_TEST_REQUIRE=${CORDON_TEST_REQUIRE:-1}

# The test binaries go where any user can read and run them (the go build cache may be
# private to root).
work=$(mktemp -d /tmp/cordon-escape.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
CGO_ENABLED=0 "$GO" test -c -o "$work/runtime.test" ./runtime
chmod 755 "$work/runtime.test"

args=(-test.count=1 -test.timeout=10m)
[ -n "${CORDON_TEST_RUN:-}" ] && args+=("-test.run=$CORDON_TEST_RUN")
[ "${CORDON_TEST_VERBOSE:-0}" = 1 ] && args+=(-test.v)

failed=()
suite() { # suite LABEL MODE [command prefix...]
	local label=$1 mode=$2
	shift 2
	echo "== escape suite: $label, $mode mode"
	if (cd "$work" && "$@" env CORDON_TEST_MODE="$mode" ./runtime.test "${args[@]}"); then
		echo "== ok: $label, $mode mode"
	else
		echo "== FAILED: $label, $mode mode"
		failed+=("$label/$mode")
	fi
}

me=$(id -un)
suite "$me" namespace
suite "$me" fallback

if [ "$(id -u)" = 0 ]; then
	if ! id -u "$user" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
		echo "== created user $user"
	fi
	# The setuid test needs a binary owned by someone else (root) with the setuid bit.
	cp "$work/runtime.test" "$work/suid.test"
	chown root:root "$work/suid.test"
	chmod 4755 "$work/suid.test"
	home="$work/home"
	mkdir -p "$home"
	chown "$user" "$home"
	as_user=(runuser -u "$user" -- env -i PATH="$PATH" HOME="$home" LANG=C.UTF-8 TMPDIR=/tmp
		CORDON_TEST_REQUIRE="$CORDON_TEST_REQUIRE" CORDON_TEST_SUID_BIN="$work/suid.test")
	if ! command -v runuser >/dev/null; then
		as_user=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- env -i PATH="$PATH"
			HOME="$home" LANG=C.UTF-8 TMPDIR=/tmp CORDON_TEST_REQUIRE="$CORDON_TEST_REQUIRE"
			CORDON_TEST_SUID_BIN="$work/suid.test")
	fi
	suite "$user" namespace "${as_user[@]}"
	suite "$user" fallback "${as_user[@]}"
fi

if [ ${#failed[@]} -gt 0 ]; then
	echo "escape suite FAILED: ${failed[*]}"
	exit 1
fi
echo "escape suite passed"
