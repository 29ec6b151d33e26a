package policy

import (
	"path/filepath"
	"strings"
)

// builtinDenyWriteHome lists paths under the home directory that the command may not change
// even where allow_write covers them: files that a shell, git or an agent reads and acts on
// later, outside the sandbox.
var builtinDenyWriteHome = []string{
	".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
	".zshrc", ".zshenv", ".zprofile", ".zlogin", ".zlogout",
	".kshrc", ".cshrc", ".tcshrc", ".config/fish",
	".inputrc", ".gitconfig", ".config/git", ".ssh",
	".claude/commands", ".claude/agents", ".claude/settings.json", ".claude/settings.local.json",
	".config/cordon", ".cache/cordon",
}

// builtinDenyWriteProject lists paths under the working directory, likewise.
var builtinDenyWriteProject = []string{
	".git/hooks", ".git/config", ".gitmodules",
	".mcp.json", ".vscode", ".idea",
	".claude/commands", ".claude/agents", ".claude/settings.json", ".claude/settings.local.json",
	".envrc",
}

// BuiltinDenyWrite returns the built-in write-deny list for a home directory and a working
// directory: shell rc and profile files, git hooks and config, editor and agent config, and
// cordon's own configuration. The policy file in use is added by [Load]; a project's
// cordon.toml needs the user's trust in its exact content anyway (see the CLI's trust).
func BuiltinDenyWrite(home, cwd string) []string {
	var out []string
	if home != "" {
		for _, p := range builtinDenyWriteHome {
			out = append(out, filepath.Join(home, p))
		}
	}
	for _, p := range builtinDenyWriteProject {
		out = append(out, filepath.Join(cwd, p))
	}
	return out
}

// BuiltinEnvDeny lists the environment variables removed from the command's environment
// unless the policy sets builtin_env_deny = false: the usual names of secrets. "*" matches any
// run of characters.
var BuiltinEnvDeny = []string{
	"*_API_KEY", "*_APIKEY", "*_TOKEN", "*_SECRET", "*_SECRET_KEY", "*_PASSWORD", "*_PASSWD",
	"*_ACCESS_KEY", "*_PRIVATE_KEY", "*_CREDENTIALS",
	"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
	"GOOGLE_APPLICATION_CREDENTIALS", "AZURE_CLIENT_SECRET",
	"SSH_AUTH_SOCK", "GPG_AGENT_INFO",
}

// MatchEnv reports whether the environment variable name matches the pattern, where "*"
// matches any run of characters and everything else matches itself.
func MatchEnv(pattern, name string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == name
	}
	if !strings.HasPrefix(name, pattern[:star]) {
		return false
	}
	rest, name := pattern[star+1:], name[star:]
	for i := 0; i <= len(name); i++ {
		if MatchEnv(rest, name[i:]) {
			return true
		}
	}
	return false
}
