//! Rows encoded for `COPY ... FROM STDIN (FORMAT binary)`, the bulk path into
//! Postgres: no SQL to parse, no text to convert, no escaping, and a batch
//! of any size in one statement. Encode rows, [`take`](BinaryRows::take) the
//! bytes now and then for `PgCopyIn::send`, and send [`finish`](BinaryRows::finish) last.
//!
//! Each value is written in Postgres' binary send format, so the column types
//! of the `COPY` target must match: `text` for [`text`](BinaryRows::text),
//! `bytea` for [`bytes`](BinaryRows::bytes), `smallint`/`integer`/`bigint`
//! for the integers, `double precision` for [`f64`](BinaryRows::f64), `date`
//! for [`date`](BinaryRows::date).
use chrono::NaiveDate;

/// The binary COPY signature, flags and header extension length.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Days from 0001-01-01 (CE day 1) to Postgres' epoch 2000-01-01.
const POSTGRES_EPOCH_CE_DAY: i32 = 730_120;

/// A buffer of encoded rows.
#[derive(Debug)]
pub struct BinaryRows {
    buffer: Vec<u8>,
    rows: u64,
}

impl Default for BinaryRows {
    fn default() -> Self {
        Self::new()
    }
}

impl BinaryRows {
    /// A buffer that starts with the COPY header.
    pub fn new() -> Self {
        BinaryRows { buffer: HEADER.to_vec(), rows: 0 }
    }

    /// Starts a row of `columns` values; the calls that follow give them in order.
    pub fn row(&mut self, columns: i16) -> &mut Self {
        self.rows += 1;
        self.buffer.extend_from_slice(&columns.to_be_bytes());
        self
    }

    fn value(&mut self, bytes: &[u8]) -> &mut Self {
        let length = i32::try_from(bytes.len()).expect("a COPY value is under 2 GiB");
        self.buffer.extend_from_slice(&length.to_be_bytes());
        self.buffer.extend_from_slice(bytes);
        self
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.value(value.as_bytes())
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.value(value)
    }

    pub fn i16(&mut self, value: i16) -> &mut Self {
        self.value(&value.to_be_bytes())
    }

    pub fn i32(&mut self, value: i32) -> &mut Self {
        self.value(&value.to_be_bytes())
    }

    pub fn i64(&mut self, value: i64) -> &mut Self {
        self.value(&value.to_be_bytes())
    }

    pub fn f64(&mut self, value: f64) -> &mut Self {
        self.value(&value.to_be_bytes())
    }

    pub fn date(&mut self, value: NaiveDate) -> &mut Self {
        use chrono::Datelike;
        self.i32(value.num_days_from_ce() - POSTGRES_EPOCH_CE_DAY)
    }

    pub fn null(&mut self) -> &mut Self {
        self.buffer.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub fn optional_i32(&mut self, value: Option<i32>) -> &mut Self {
        match value {
            Some(value) => self.i32(value),
            None => self.null(),
        }
    }

    pub fn optional_i64(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.i64(value),
            None => self.null(),
        }
    }

    /// Rows started so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The bytes encoded since the last take, to send now.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    /// The last bytes, with the end-of-data marker.
    pub fn finish(mut self) -> Vec<u8> {
        self.buffer.extend_from_slice(&(-1i16).to_be_bytes());
        self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_epoch_is_day_zero() {
        let mut rows = BinaryRows::new();
        rows.take();
        rows.date(NaiveDate::from_ymd_opt(2000, 1, 1).expect("date"));
        assert_eq!(rows.take(), [0, 0, 0, 4, 0, 0, 0, 0]);
        rows.date(NaiveDate::from_ymd_opt(1999, 12, 31).expect("date"));
        assert_eq!(rows.take(), [0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn a_row_is_its_column_count_then_length_prefixed_values() {
        let mut rows = BinaryRows::new();
        assert_eq!(rows.take(), HEADER);
        rows.row(3).text("ab").i16(-2).null();
        assert_eq!(rows.rows(), 1);
        assert_eq!(
            rows.finish(),
            [0, 3, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 2, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }
}
