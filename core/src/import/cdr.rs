//! `monti import cdr FILE`: Asterisk's `Master.csv` (`cdr/cdr_csv.c`, protocols.md §2.5): 16
//! standard columns, then `uniqueid` and `userfield` as the shipped `cdr.conf` enables them,
//! then `peeraccount`, `linkedid`, `sequence` with `newcdrcolumns`.

use chrono::TimeZone as _;

use super::{Progress, Refused, Report, csv_fields};
use crate::store::call_records::{self, CallRecord};
use crate::store::calls;
use crate::store::{Store, StoreResult, TenantScope};

/// Records stored per transaction.
const BATCH: usize = 2_000;

const DISPOSITIONS: [&str; 6] = ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CONGESTION", "CANCEL"];

/// Dates in the file are local time of `zone` (unless Asterisk wrote them in UTC: pass `UTC`).
fn instant(text: &str, zone: chrono_tz::Tz, column: &str) -> Result<i64, String> {
    let naive = chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S")
        .map_err(|_| format!("{column} `{text}` is not YYYY-MM-DD HH:MM:SS"))?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("{column} `{text}` does not exist in {zone} (a clock change)"))
}

/// One line as a record. `occurrence` counts earlier records of the file with the same
/// identity (two legs of a call can agree on it): with the identity it makes the record's key
/// ([`call_records::key`]), which stays the same when the file grows (Master.csv is only
/// appended to) and when the same CDR is written with other quoting.
pub fn parse(line: &str, occurrence: usize, zone: chrono_tz::Tz) -> Result<CallRecord, String> {
    let fields = csv_fields(line)?;
    if !matches!(fields.len(), 16 | 17 | 18 | 21) {
        return Err(format!("{} columns; Master.csv has 16, 17, 18 or 21", fields.len()));
    }
    let number = |index: usize, column: &str| -> Result<i64, String> {
        fields[index]
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("{column} `{}` is not a number of seconds", fields[index]))
    };
    let disposition = fields[14].trim().to_ascii_uppercase();
    if !DISPOSITIONS.contains(&disposition.as_str()) {
        return Err(format!("unknown disposition `{}`", fields[14]));
    }
    let started_at = instant(&fields[9], zone, "start")?;
    let answered_at = match fields[10].trim() {
        "" => None,
        text => Some(instant(text, zone, "answer")?),
    };
    let ended_at = instant(&fields[11], zone, "end")?;
    if ended_at < started_at {
        return Err("the call ends before it starts".into());
    }
    let mut record = CallRecord {
        key: String::new(),
        source: "asterisk-cdr".into(),
        call_id: fields.get(16).cloned().unwrap_or_default(),
        caller: fields[1].clone(),
        destination: fields[2].clone(),
        context: fields[3].clone(),
        channel: fields[5].clone(),
        dst_channel: fields[6].clone(),
        last_app: fields[7].clone(),
        started_at,
        answered_at,
        ended_at,
        duration_s: number(12, "duration")?,
        billsec_s: number(13, "billsec")?,
        disposition,
        account: fields[0].clone(),
    };
    record.key = call_records::key(&record, occurrence);
    Ok(record)
}

/// Imports the file's text into the tenant; returns the report and the good lines' counts by
/// disposition.
pub async fn import(
    store: &Store,
    scope: &TenantScope,
    text: &str,
    zone: chrono_tz::Tz,
    show_progress: bool,
) -> StoreResult<(Report, Vec<(String, u64)>)> {
    let (lines, mut report) = super::numbered_lines(text);
    let mut progress = Progress::new("importing CDRs", lines.len(), show_progress);
    let mut by_disposition: Vec<(String, u64)> = DISPOSITIONS.iter().map(|d| ((*d).to_owned(), 0)).collect();
    let mut batch = Vec::with_capacity(BATCH);
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (done, (number, line)) in lines.iter().enumerate() {
        match parse(line, 0, zone) {
            Ok(mut record) => {
                // The same identity again in this file: another leg, counted.
                let occurrence = seen.entry(record.key.clone()).or_insert(0);
                record.key = call_records::key(&record, *occurrence);
                *occurrence += 1;
                if let Some(count) = by_disposition.iter_mut().find(|(d, _)| *d == record.disposition) {
                    count.1 += 1;
                }
                batch.push(record);
            }
            Err(why) => report.refused.push(Refused { line: *number, why }),
        }
        if batch.len() >= BATCH {
            let added = call_records::insert(store, scope, &batch).await?;
            calls::complete_from_records(store, scope, &batch).await?;
            report.added += added;
            report.already += batch.len() as u64 - added;
            batch.clear();
        }
        progress.show(done + 1);
    }
    if !batch.is_empty() {
        let added = call_records::insert(store, scope, &batch).await?;
        calls::complete_from_records(store, scope, &batch).await?;
        report.added += added;
        report.already += batch.len() as u64 - added;
    }
    by_disposition.retain(|(_, n)| *n > 0);
    Ok((report, by_disposition))
}
