module github.com/cordonsh/cordon

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/landlock-lsm/go-landlock v0.11.0
	github.com/tetratelabs/wazero v1.12.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.49.0
	golang.org/x/term v0.47.0
)

require (
	golang.org/x/text v0.43.0 // indirect
	kernel.org/pub/linux/libs/security/libcap/psx v1.2.77 // indirect
)
