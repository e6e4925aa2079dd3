package periphhost

import "periph.io/x/conn/v3/gpio/gpiotest"

// testPin is periph's own fake pin. Fake hardware events by sending levels
// on EdgesChan; read what the provider did from L, D and F under its mutex.
type testPin = gpiotest.Pin
