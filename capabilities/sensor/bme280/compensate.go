package bme280

import (
	"fmt"

	"periph.io/x/conn/v3/physic"
)

// calibration holds the trimming parameters burnt into each sensor
// (datasheet table 16).
type calibration struct {
	t1         uint16
	t2, t3     int16
	p1         uint16
	p2, p3, p4 int16
	p5, p6, p7 int16
	p8, p9     int16
	h1         uint8
	h2         int16
	h3         uint8
	h4, h5     int16
	h6         int8
}

// parseCalibration decodes registers 0x88..0xA1 (tp) and 0xE1..0xE7 (h).
// dig_H4 and dig_H5 are 12-bit values packed around a shared nibble in
// 0xE5; their high bytes are sign-extended, as Bosch's reference driver
// does.
func parseCalibration(tp *[26]byte, h *[7]byte) calibration {
	le := func(i int) uint16 { return uint16(tp[i]) | uint16(tp[i+1])<<8 }
	return calibration{
		t1: le(0), t2: int16(le(2)), t3: int16(le(4)),
		p1: le(6), p2: int16(le(8)), p3: int16(le(10)), p4: int16(le(12)),
		p5: int16(le(14)), p6: int16(le(16)), p7: int16(le(18)),
		p8: int16(le(20)), p9: int16(le(22)),
		// tp[24] is register 0xA0, unused.
		h1: tp[25],
		h2: int16(uint16(h[0]) | uint16(h[1])<<8),
		h3: h[2],
		h4: int16(int8(h[3]))*16 | int16(h[4]&0x0F),
		h5: int16(int8(h[5]))*16 | int16(h[4]>>4),
		h6: int8(h[6]),
	}
}

// check rejects calibration a working sensor cannot have: dig_T1 and
// dig_P1 scale everything else, and a bus that reads all zeros or all
// ones gives them away.
func (c *calibration) check() error {
	switch {
	case c.t1 == 0 || c.p1 == 0:
		return fmt.Errorf("%w: dig_T1 %d, dig_P1 %d", ErrCalibration, c.t1, c.p1)
	case c.t1 == 0xFFFF && c.p1 == 0xFFFF:
		return fmt.Errorf("%w: all ones", ErrCalibration)
	}
	return nil
}

// reading is one compensated measurement in the datasheet's fixed-point
// units.
type reading struct {
	t int32  // °C × 100
	p uint32 // Pa, Q24.8
	h uint32 // %RH, Q22.10
}

func (r reading) celsius() float64   { return float64(r.t) / 100 }
func (r reading) pascals() float64   { return float64(r.p) / 256 }
func (r reading) percentRH() float64 { return float64(r.h) / 1024 }

func (r reading) env() physic.Env {
	return physic.Env{
		Temperature: physic.Temperature(r.t)*10*physic.MilliCelsius + physic.ZeroCelsius,
		// 1/256 Pa is 3906250 nPa exactly.
		Pressure: physic.Pressure(r.p) * (physic.Pascal / 256),
		// 1/1024 %RH is 97.65625 units of 0.00001 %RH: round to nearest.
		Humidity: physic.RelativeHumidity((int64(r.h)*int64(physic.PercentRH) + 512) / 1024),
	}
}

// compensate turns registers 0xF7..0xFE into a reading.
func (c *calibration) compensate(data *[8]byte) (reading, error) {
	adcP := int32(data[0])<<12 | int32(data[1])<<4 | int32(data[2])>>4
	adcT := int32(data[3])<<12 | int32(data[4])<<4 | int32(data[5])>>4
	adcH := int32(data[6])<<8 | int32(data[7])
	if adcT == skippedTP || adcP == skippedTP || adcH == skippedH {
		return reading{}, fmt.Errorf("%w: raw temperature %#x, pressure %#x, humidity %#x", ErrSkipped, adcT, adcP, adcH)
	}
	t, fine := c.temperature(adcT)
	return reading{t: t, p: c.pressure(adcP, fine), h: c.humidity(adcH, fine)}, nil
}

// The three compensations below are the datasheet's (section 4.2.3)
// BME280_compensate_T_int32, BME280_compensate_P_int64 and
// bme280_compensate_H_int32, with C's precedence made explicit: in Go, >>
// binds as tightly as *, in C more loosely than + and -. Signed shifts and
// wrapping overflow behave as the reference code does on the
// two's-complement machines it runs on, and nothing here can panic.

// temperature returns °C × 100 and t_fine, the fine temperature the other
// two compensations depend on.
func (c *calibration) temperature(adcT int32) (t, fine int32) {
	var1 := (((adcT >> 3) - (int32(c.t1) << 1)) * int32(c.t2)) >> 11
	d := (adcT >> 4) - int32(c.t1)
	var2 := (((d * d) >> 12) * int32(c.t3)) >> 14
	fine = var1 + var2
	return (fine*5 + 128) >> 8, fine
}

// pressure returns Pa in Q24.8.
func (c *calibration) pressure(adcP, fine int32) uint32 {
	var1 := int64(fine) - 128000
	var2 := var1 * var1 * int64(c.p6)
	var2 += (var1 * int64(c.p5)) << 17
	var2 += int64(c.p4) << 35
	var1 = ((var1 * var1 * int64(c.p3)) >> 8) + ((var1 * int64(c.p2)) << 12)
	var1 = (((int64(1) << 47) + var1) * int64(c.p1)) >> 33
	if var1 == 0 {
		return 0 // the datasheet's guard against dividing by zero
	}
	p := 1048576 - int64(adcP)
	p = (((p << 31) - var2) * 3125) / var1
	var1 = (int64(c.p9) * (p >> 13) * (p >> 13)) >> 25
	var2 = (int64(c.p8) * p) >> 19
	p = ((p + var1 + var2) >> 8) + (int64(c.p7) << 4)
	return uint32(p)
}

// humidity returns %RH in Q22.10, clamped to 0..100 %.
func (c *calibration) humidity(adcH, fine int32) uint32 {
	x := fine - 76800
	a := (((adcH << 14) - (int32(c.h4) << 20) - (int32(c.h5) * x)) + 16384) >> 15
	b := ((((x * int32(c.h6)) >> 10) * (((x * int32(c.h3)) >> 11) + 32768)) >> 10) + 2097152
	b = (b*int32(c.h2) + 8192) >> 14
	x = a * b
	x -= ((((x >> 15) * (x >> 15)) >> 7) * int32(c.h1)) >> 4
	x = min(max(x, 0), 419430400)
	return uint32(x >> 12)
}
