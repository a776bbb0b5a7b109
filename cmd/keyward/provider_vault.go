package main

import _ "github.com/keyward/keyward/providers/vault"
