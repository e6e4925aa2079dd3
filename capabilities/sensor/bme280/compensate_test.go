package bme280

import (
	"math"
	"testing"
)

// Recorded from a real BME280 by periph.io's bmxx80 driver tests
// (periph/devices, bmxx80/bmx280_test.go, TestI2CSenseBME280_success):
// registers 0x88..0xA1, 0xE1..0xE7 and one forced measurement at 0xF7..0xFE.
// periph's own integer compensation gives 23.72 °C and 100942.6953125 Pa
// for them.
var (
	realCalTP = []byte{0x10, 0x6e, 0x6c, 0x66, 0x32, 0x00, 0x5d, 0x95, 0xb8, 0xd5, 0xd0, 0x0b, 0x77, 0x1e,
		0x9d, 0xff, 0xf9, 0xff, 0xac, 0x26, 0x0a, 0xd8, 0xbd, 0x10, 0x00, 0x4b}
	realCalH = []byte{0x6e, 0x01, 0x00, 0x13, 0x05, 0x00, 0x1e}
	realData = []byte{0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x7a, 0x76}
)

// The worked example of the BMP280 datasheet (BST-BMP280-DS001, section
// 3.12), whose temperature and pressure compensation the BME280 shares:
// adc_T 519888 gives t_fine 128422 and 25.08 °C, adc_P 415148 gives
// 100653.27 Pa.
var datasheetExample = calibration{
	t1: 27504, t2: 26435, t3: -1000,
	p1: 36477, p2: -10685, p3: 3024, p4: 2855, p5: 140, p6: -7, p7: 15500, p8: -14600, p9: 6000,
}

func realCalibration(t *testing.T) calibration {
	t.Helper()
	var tp [26]byte
	var h [7]byte
	copy(tp[:], realCalTP)
	copy(h[:], realCalH)
	return parseCalibration(&tp, &h)
}

// The datasheet's floating-point compensation (appendix 8.1), an
// independent check on the integer code: it was written from the
// datasheet's text, not derived from compensate.go.
func (c *calibration) floatTemperature(adcT int32) (celsius, fine float64) {
	v1 := (float64(adcT)/16384.0 - float64(c.t1)/1024.0) * float64(c.t2)
	v2 := (float64(adcT)/131072.0 - float64(c.t1)/8192.0) * (float64(adcT)/131072.0 - float64(c.t1)/8192.0) * float64(c.t3)
	return (v1 + v2) / 5120.0, float64(int32(v1 + v2))
}

func (c *calibration) floatPressure(adcP int32, fine float64) float64 {
	v1 := fine/2.0 - 64000.0
	v2 := v1 * v1 * float64(c.p6) / 32768.0
	v2 += v1 * float64(c.p5) * 2.0
	v2 = v2/4.0 + float64(c.p4)*65536.0
	v1 = (float64(c.p3)*v1*v1/524288.0 + float64(c.p2)*v1) / 524288.0
	v1 = (1.0 + v1/32768.0) * float64(c.p1)
	if v1 == 0 {
		return 0
	}
	p := 1048576.0 - float64(adcP)
	p = (p - v2/4096.0) * 6250.0 / v1
	v1 = float64(c.p9) * p * p / 2147483648.0
	v2 = p * float64(c.p8) / 32768.0
	return p + (v1+v2+float64(c.p7))/16.0
}

func (c *calibration) floatHumidity(adcH int32, fine float64) float64 {
	h := fine - 76800.0
	h = (float64(adcH) - (float64(c.h4)*64.0 + float64(c.h5)/16384.0*h)) *
		(float64(c.h2) / 65536.0 * (1.0 + float64(c.h6)/67108864.0*h*(1.0+float64(c.h3)/67108864.0*h)))
	h *= 1.0 - float64(c.h1)*h/524288.0
	return min(max(h, 0), 100)
}

func TestParseCalibration(t *testing.T) {
	// Field by field from the datasheet's table 16, little-endian.
	want := calibration{
		t1: 0x6e10, t2: 0x666c, t3: 0x0032,
		p1: 0x955d, p2: -0x2a48, p3: 0x0bd0, p4: 0x1e77, p5: -0x0063, p6: -0x0007,
		p7: 0x26ac, p8: -0x27f6, p9: 0x10bd,
		h1: 0x4b, h2: 0x016e, h3: 0x00,
		h4: 0x13<<4 | 0x5, // 0xE4 = bits 11:4, 0xE5 bits 3:0 = bits 3:0
		h5: 0x00<<4 | 0x0, // 0xE6 = bits 11:4, 0xE5 bits 7:4 = bits 3:0
		h6: 0x1e,
	}
	if got := realCalibration(t); got != want {
		t.Fatalf("parsed\n%+v\nwant\n%+v", got, want)
	}

	// Negative dig_H4 and dig_H5: their high bytes are signed.
	var tp [26]byte
	h := [7]byte{0, 0, 0, 0xF0, 0x5A, 0x81, 0xFF}
	c := parseCalibration(&tp, &h)
	if c.h4 != -16*16+0xA || c.h5 != -127*16+0x5 || c.h6 != -1 {
		t.Fatalf("h4 %d, h5 %d, h6 %d; want -246, -2027, -1", c.h4, c.h5, c.h6)
	}
}

func TestCompensateDatasheetExample(t *testing.T) {
	c := datasheetExample
	temp, fine := c.temperature(519888)
	if temp != 2508 || fine != 128422 {
		t.Fatalf("temperature %d (°C×100), t_fine %d; want 2508, 128422", temp, fine)
	}
	// The datasheet's 100653.27 Pa comes from its floating-point code; the
	// integer result "may deviate slightly" and lands within 0.02 Pa.
	p := float64(c.pressure(415148, fine)) / 256
	if math.Abs(p-100653.27) > 0.05 {
		t.Fatalf("pressure %.4f Pa, want 100653.27 ± 0.05", p)
	}
}

func TestCompensateRealDevice(t *testing.T) {
	c := realCalibration(t)
	var data [8]byte
	copy(data[:], realData)
	r, err := c.compensate(&data)
	if err != nil {
		t.Fatal(err)
	}
	if r.t != 2372 {
		t.Errorf("temperature %d (°C×100), want 2372", r.t)
	}
	if r.p != 25841330 { // 100942.6953125 Pa × 256
		t.Errorf("pressure %d (Pa×256), want 25841330", r.p)
	}
	if r.h != 66873 { // 65.3057 %RH × 1024; periph reports 65.3056 %RH
		t.Errorf("humidity %d (%%RH×1024), want 66873", r.h)
	}

	// And against the floating-point formulas, each within one step of the
	// integer code's resolution (0.01 °C) or the datasheet's stated
	// difference between the two (pressure: about 1 Pa).
	ft, fine := c.floatTemperature(526700)
	fp := c.floatPressure(304428, fine)
	fh := c.floatHumidity(31350, fine)
	if math.Abs(ft-r.celsius()) > 0.01 || math.Abs(fp-r.pascals()) > 1 || math.Abs(fh-r.percentRH()) > 0.01 {
		t.Errorf("integer %.4f °C %.4f Pa %.4f %%RH; float %.4f °C %.4f Pa %.4f %%RH",
			r.celsius(), r.pascals(), r.percentRH(), ft, fp, fh)
	}
}

func TestCompensateMatchesFloatFormulas(t *testing.T) {
	// Across the sensor's operating range (-40..85 °C, 300..1100 hPa,
	// 0..100 %RH) both calibrations must agree with the float formulas.
	var maxT, maxP, maxH float64
	var n int
	for _, c := range []calibration{realCalibration(t), withHumidity(datasheetExample, realCalibration(t))} {
		for adcT := int32(380000); adcT <= 640000; adcT += 6500 {
			temp, fine := c.temperature(adcT)
			ft, ffine := c.floatTemperature(adcT)
			if ft < -40 || ft > 85 {
				continue
			}
			maxT = max(maxT, math.Abs(float64(temp)/100-ft))
			for adcP := int32(200000); adcP <= 600000; adcP += 10000 {
				fp := c.floatPressure(adcP, ffine)
				if fp < 30000 || fp > 110000 {
					continue
				}
				maxP = max(maxP, math.Abs(float64(c.pressure(adcP, fine))/256-fp))
				n++
			}
			for adcH := int32(0); adcH <= 65535; adcH += 1500 {
				maxH = max(maxH, math.Abs(float64(c.humidity(adcH, fine))/1024-c.floatHumidity(adcH, ffine)))
			}
		}
	}
	t.Logf("largest differences from the float formulas over %d points: %.4f °C, %.4f Pa, %.4f %%RH", n, maxT, maxP, maxH)
	if n < 500 {
		t.Fatalf("only %d points in range", n)
	}
	if maxT > 0.01 || maxP > 1 || maxH > 0.05 {
		t.Fatalf("integer and float compensation differ by up to %.4f °C, %.4f Pa, %.4f %%RH", maxT, maxP, maxH)
	}
}

func withHumidity(c, h calibration) calibration {
	c.h1, c.h2, c.h3, c.h4, c.h5, c.h6 = h.h1, h.h2, h.h3, h.h4, h.h5, h.h6
	return c
}

func TestCompensateSkipped(t *testing.T) {
	c := realCalibration(t)
	for name, data := range map[string][8]byte{
		"after reset": {0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00},
		"temperature": {0x4a, 0x52, 0xc0, 0x80, 0x00, 0x00, 0x7a, 0x76},
		"pressure":    {0x80, 0x00, 0x00, 0x80, 0x96, 0xc0, 0x7a, 0x76},
		"humidity":    {0x4a, 0x52, 0xc0, 0x80, 0x96, 0xc0, 0x80, 0x00},
	} {
		if _, err := c.compensate(&data); err == nil {
			t.Errorf("%s skipped: no error", name)
		}
	}
}

func TestEnvUnits(t *testing.T) {
	e := reading{t: -1005, p: 25841330, h: 102400}.env()
	if got := e.Temperature.Celsius(); math.Abs(got+10.05) > 1e-9 {
		t.Errorf("temperature %v °C, want -10.05", got)
	}
	if e.Pressure != 100942695312500 { // nPa, exact
		t.Errorf("pressure %d nPa, want 100942695312500", e.Pressure)
	}
	if e.Humidity != 10000000 { // 100 %RH in 0.00001 %RH
		t.Errorf("humidity %d, want 10000000", e.Humidity)
	}
}

func FuzzCompensate(f *testing.F) {
	f.Add(realCalTP, realCalH, realData)
	f.Add(make([]byte, 26), make([]byte, 7), make([]byte, 8))
	f.Add(bytesOf(0xFF, 26), bytesOf(0xFF, 7), bytesOf(0xFF, 8))
	f.Fuzz(func(t *testing.T, tpb, hb, db []byte) {
		var tp [26]byte
		var h [7]byte
		var data [8]byte
		copy(tp[:], tpb)
		copy(h[:], hb)
		copy(data[:], db)
		c := parseCalibration(&tp, &h)
		if c.check() != nil {
			return
		}
		r, err := c.compensate(&data)
		if err != nil {
			return
		}
		if r.h > 100*1024 {
			t.Fatalf("humidity %d (%%RH×1024) above 100 %%", r.h)
		}
		e := r.env()
		if e.Humidity < 0 || e.Humidity > 10000000 {
			t.Fatalf("physic humidity %d out of range", e.Humidity)
		}
	})
}

func bytesOf(b byte, n int) []byte {
	s := make([]byte, n)
	for i := range s {
		s[i] = b
	}
	return s
}
