package policy

import (
	"embed"
	"slices"
	"strings"
)

//go:embed presets/*.toml
var presetFS embed.FS

// PresetNames lists the built-in presets.
func PresetNames() []string {
	entries, _ := presetFS.ReadDir("presets")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".toml"))
	}
	slices.Sort(names)
	return names
}

// PresetSource returns the TOML text of a built-in preset.
func PresetSource(name string) ([]byte, bool) { return presetFile(name) }

func presetFile(name string) ([]byte, bool) {
	if strings.ContainsAny(name, "/\\.") || name == "" {
		return nil, false
	}
	data, err := presetFS.ReadFile("presets/" + name + ".toml")
	return data, err == nil
}
