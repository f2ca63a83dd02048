//! The production store: Redis (spec/redis.md), through one auto-reconnecting
//! `ConnectionManager` shared by every request.
//!
//! Every operation is one pipelined round trip (two where the second depends on the first:
//! the DLQ move, the chain status, and reads that meet the other vCon form). A dead Redis gives
//! an error that [`StoreError::is_unavailable`] within a few seconds, never a hang: connection
//! and response timeouts are short, reconnection retries are few, and each operation has a
//! deadline. The manager reconnects by itself on the next call once Redis is back. Every error
//! names the operation and carries what the client reported as its source.
//!
//! The one blocking command, the claim's `BLMOVE`, runs on connections of its own
//! ([`blocking`]), so a claim waiting for work never delays another request.

mod blocking;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ServerErrorKind, Value};
use uuid::Uuid;

use super::keys::{member_uuid, sorted_set_member, Keys, PENDING_TTL_SECONDS};
use super::{
    asked_ttl, describe_for_index, party_entries, search_sets, ChainLists, ChainStatus,
    EgressPending, EgressRelease, Finish, IndexScore, ListQuery, Push, RunOutcome, SearchTerms,
    Store, StoreError, StoreResult, StoreSettings, VconWrite, LONGEST_CLAIM_WAIT,
};
use crate::vcon::PartyIndex;
use blocking::BlockingConnections;

/// How long one connection attempt may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis may take to answer a request on an open connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection attempts per call after the first; few, so that a call against a dead Redis
/// fails fast (the next call tries again).
const RECONNECT_RETRIES: usize = 1;
/// The longest wait between two reconnection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// The deadline of any one operation, reconnection included: a safety net above the timeouts.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(6);
/// `/ready` and the start-up check want an answer within this.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// `SCAN … COUNT` of `/index_vcons` (api.md §5.24).
const SCAN_COUNT: u64 = 500;
/// Values `/index_vcons` reads per round trip.
const READ_CHUNK: usize = 100;
/// The oldest server with `LMOVE`, `BLMOVE` and `LPOP <count>` (redis.md §1).
const MINIMUM_VERSION: (u32, u32) = (6, 2);
/// `LMOVE`s per round trip when recovering a processing list.
const RECOVERY_BATCH: usize = 100;
/// The shortest `BLMOVE` timeout: Redis reads one that rounds to 0 ms as "block forever".
const SHORTEST_BLOCK: Duration = Duration::from_millis(1);

/// Gives `vcon:<uuid>` its TTL only when nothing holds it (redis.md §2, api.md §5.13 step 2):
/// the pending count read and the TTL written cannot be separated by a finishing run. The text
/// itself is written by a plain `SET` before it: passing a vCon through Lua costs Redis a copy
/// and a hash of the whole text (it tripled the cost of a `POST /vcon` in Redis).
/// KEYS: the vCon, its pending hash. ARGV: `vcon_ttl` (> 0).
const SETTLE_TTL_SCRIPT: &str = r#"
local count = tonumber(redis.call('HGET', KEYS[2], 'count') or '0') or 0
if count <= 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
else
  redis.call('PERSIST', KEYS[1])
end
return 1
"#;

/// Moves an item this instance holds but runs no more back to the head of its list, only if
/// it is still in the processing list. KEYS: the processing list, the list. ARGV: the item.
const RETURN_ITEM_SCRIPT: &str = r#"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"#;

/// Writes `vcon:<uuid>` as a RedisJSON document (`redis.json_module`): `JSON.SET` cannot
/// replace a value of another type, so such a value is deleted first, atomically.
/// KEYS: the vCon. ARGV: the text.
const WRITE_JSON_SCRIPT: &str = r#"
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and kind ~= 'ReJSON-RL' then redis.call('DEL', KEYS[1]) end
redis.call('JSON.SET', KEYS[1], '$', ARGV[1])
return 1
"#;

/// The TTL step of a finishing run (redis.md §4.2): decrement the pending count, keep the
/// longest TTL asked, apply it when nothing holds the vCon any more. The count read and the
/// TTL written cannot be separated by another finishing run or an enqueue.
/// KEYS: the vCon, its pending hash. ARGV: the TTL asked in seconds (-1 = never), `1` to
/// decrement the count (`0` for a vCon that holds none: created by a link during the run).
const TTL_STEP_SCRIPT: &str = r#"
local count
if ARGV[2] == '1' then
  count = redis.call('HINCRBY', KEYS[2], 'count', -1)
else
  count = tonumber(redis.call('HGET', KEYS[2], 'count') or '0') or 0
end
local ttl = tonumber(ARGV[1])
local kept = tonumber(redis.call('HGET', KEYS[2], 'ttl') or '')
if kept and (kept < 0 or (ttl >= 0 and kept > ttl)) then ttl = kept end
if ttl < 0 then ttl = -1 end
if count > 0 then
  redis.call('HSET', KEYS[2], 'ttl', string.format('%d', ttl))
  return 0
end
redis.call('DEL', KEYS[2])
if ttl < 0 then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], string.format('%d', ttl))
end
return 1
"#;

/// Removes a storage whose write succeeded from an egress-pending record (redis.md §4.3), so
/// that of two storages reprocessed at once exactly one sees the record emptied.
/// KEYS: the record. ARGV: the storage.
/// Reply: 0 = no record; 1 = other storages still failing (the record is rewritten without
/// this one, its TTL kept); else the record's egress lists, to push: the record is left as it
/// was, for the caller to delete after the push, so a crash in between releases them again.
const RELEASE_EGRESS_SCRIPT: &str = r#"
local text = redis.call('GET', KEYS[1])
if not text then return 0 end
local record = cjson.decode(text)
local left = {}
for _, name in ipairs(record['storages']) do
  if name ~= ARGV[1] then left[#left + 1] = name end
end
if #left > 0 then
  record['storages'] = left
  redis.call('SET', KEYS[1], cjson.encode(record), 'KEEPTTL')
  return 1
end
return record['egress_lists']
"#;

/// The Redis store.
pub struct RedisStore {
    connection: ConnectionManager,
    blocking: BlockingConnections,
    settings: StoreSettings,
    keys: Keys,
    sorted_set: String,
    settle_ttl: Script,
    write_json: Script,
    /// Loaded by `redis-rs` on first use (`return_item` is rare).
    return_item: Script,
    ttl_step: Script,
    release_egress: Script,
    /// Whether this connection's server is believed to have this store's scripts. False at
    /// start and after any lost connection (a restarted Redis forgets its scripts); while
    /// false, a pipeline that calls a script sends `SCRIPT LOAD` ahead of it (see
    /// [`RedisStore::scripted_pipeline`]).
    script_loaded: AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's debug output holds the URL, which may hold a password.
        f.debug_struct("RedisStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis at `url`. Fails with [`StoreError::Unavailable`] or
    /// [`StoreError::TimedOut`] when the first connection cannot be made within the connection
    /// timeout, [`StoreError::InvalidUrl`] for a URL that is not a Redis URL, and
    /// [`StoreError::OldServer`] for a server without the commands the store needs.
    pub async fn connect(url: &str, settings: StoreSettings) -> StoreResult<RedisStore> {
        // The URL is left out of the messages: it may carry a password.
        let client =
            redis::Client::open(url).map_err(|source| StoreError::InvalidUrl { source })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(RECONNECT_MAX_DELAY);
        let blocking = BlockingConnections::new(client.clone(), CONNECTION_TIMEOUT);
        let connecting = ConnectionManager::new_with_config(client, config);
        let connection = match tokio::time::timeout(OPERATION_TIMEOUT, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(classify("connect", error)),
            Err(_) => {
                return Err(StoreError::TimedOut {
                    operation: "connect",
                    waited: OPERATION_TIMEOUT,
                })
            }
        };
        check_version(&connection).await?;
        let keys = Keys::new(settings.key_prefix.clone());
        let sorted_set = keys.sorted_set(&settings.sorted_set);
        Ok(RedisStore {
            connection,
            blocking,
            settings,
            keys,
            sorted_set,
            settle_ttl: Script::new(SETTLE_TTL_SCRIPT),
            write_json: Script::new(WRITE_JSON_SCRIPT),
            return_item: Script::new(RETURN_ITEM_SCRIPT),
            ttl_step: Script::new(TTL_STEP_SCRIPT),
            release_egress: Script::new(RELEASE_EGRESS_SCRIPT),
            script_loaded: AtomicBool::new(false),
        })
    }

    /// Sends `pipe` for `operation` and converts the replies; errors classified, lost
    /// connections noted.
    async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &Pipeline,
    ) -> StoreResult<T> {
        let mut connection = self.connection.clone();
        self.settle(operation, pipe.query_async(&mut connection))
            .await
    }

    /// Sends one command for `operation`.
    async fn query_cmd<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &Cmd,
    ) -> StoreResult<T> {
        let mut connection = self.connection.clone();
        self.settle(operation, cmd.query_async(&mut connection))
            .await
    }

    /// Awaits a request within [`OPERATION_TIMEOUT`] and classifies its failure.
    async fn settle<T>(
        &self,
        operation: &'static str,
        request: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> StoreResult<T> {
        let outcome = tokio::time::timeout(OPERATION_TIMEOUT, request).await;
        self.conclude(operation, outcome, OPERATION_TIMEOUT)
    }

    /// The result of a request that ran within `deadline` (`Ok`) or not (`Err`).
    fn conclude<T>(
        &self,
        operation: &'static str,
        outcome: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
        deadline: Duration,
    ) -> StoreResult<T> {
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => classify(operation, error),
            Err(_) => StoreError::TimedOut {
                operation,
                waited: deadline,
            },
        };
        if error.is_unavailable() {
            // The next connection may be to a restarted server that lost its scripts.
            self.script_loaded.store(false, Ordering::Relaxed);
        }
        Err(error)
    }

    /// Appends enqueue protocol steps 1–2 (redis.md §3.1) for one uuid: `MULTI PERSIST
    /// HINCRBY EXPIRE EXEC`. The `EXEC` reply is kept so an error inside it surfaces.
    fn raise_pending(&self, pipe: &mut Pipeline, vcon_key: &str, pending_key: &str) {
        pipe.cmd("MULTI")
            .ignore()
            .cmd("PERSIST")
            .arg(vcon_key)
            .ignore()
            .cmd("HINCRBY")
            .arg(pending_key)
            .arg("count")
            .arg(1)
            .ignore()
            .cmd("EXPIRE")
            .arg(pending_key)
            .arg(PENDING_TTL_SECONDS)
            .ignore()
            .cmd("EXEC");
    }

    /// Step 2 of `POST /vcon`: the text (once, without going through Lua), then its TTL:
    /// none when an enqueue follows (its `PERSIST`) or `vcon_ttl` is 0, else `vcon_ttl` unless
    /// the vCon is pending.
    fn push_write(
        &self,
        pipe: &mut Pipeline,
        vcon: &VconWrite<'_>,
        keys: [&str; 2],
        enqueued: bool,
    ) {
        let json = self.settings.json_module;
        if json {
            pipe.add_command(evalsha(&self.write_json, &[keys[0]], &[vcon.text]))
                .ignore();
        } else {
            // SET drops any TTL the key had.
            pipe.cmd("SET").arg(keys[0]).arg(vcon.text).ignore();
        }
        let ttl = self.settings.vcon_ttl;
        if !enqueued && ttl > 0 {
            pipe.add_command(evalsha(&self.settle_ttl, &keys, &[&ttl.to_string()]))
                .ignore();
        } else if json {
            // JSON.SET keeps the TTL of the document it replaces.
            pipe.cmd("PERSIST").arg(keys[0]).ignore();
        }
    }

    /// `SCRIPT LOAD` of every script of this store.
    fn load_scripts(&self, pipe: &mut Pipeline) {
        pipe.load_script(&self.settle_ttl).ignore();
        pipe.load_script(&self.ttl_step).ignore();
        pipe.load_script(&self.release_egress).ignore();
        if self.settings.json_module {
            pipe.load_script(&self.write_json).ignore();
        }
    }

    /// A pipeline for commands that `EVALSHA` this store's scripts: it starts by loading them
    /// when the server may have lost them. Send it with [`RedisStore::query_scripted`].
    fn scripted_pipeline(&self, capacity: usize) -> Pipeline {
        let mut pipe = Pipeline::with_capacity(capacity + 4);
        if !self.script_loaded.load(Ordering::Relaxed) {
            self.load_scripts(&mut pipe);
        }
        pipe
    }

    /// Sends a [`RedisStore::scripted_pipeline`]; its replies (those not ignored), and whether
    /// it had to be repaired. When Redis had lost the scripts under a live connection
    /// (`SCRIPT FLUSH`, or a restart that another call noticed first), every other command of
    /// the pipeline ran and the `EVALSHA`s failed: `repair` adds the scripted commands again,
    /// sent after loading the scripts, and the replies are that second pipeline's.
    async fn query_scripted(
        &self,
        operation: &'static str,
        pipe: &Pipeline,
        repair: impl FnOnce(&mut Pipeline),
    ) -> StoreResult<(Value, bool)> {
        let mut connection = self.connection.clone();
        let request = pipe.query_async::<Value>(&mut connection);
        let outcome = tokio::time::timeout(OPERATION_TIMEOUT, request).await;
        if !matches!(&outcome, Ok(Err(error)) if lost_script(error)) {
            let replies = self.conclude(operation, outcome, OPERATION_TIMEOUT)?;
            self.script_loaded.store(true, Ordering::Relaxed);
            return Ok((replies, false));
        }
        let mut again = Pipeline::with_capacity(8);
        self.load_scripts(&mut again);
        repair(&mut again);
        let replies = self.query::<Value>(operation, &again).await?;
        self.script_loaded.store(true, Ordering::Relaxed);
        Ok((replies, true))
    }

    /// Appends the push of `id` onto one list: the enqueue protocol (redis.md §3.1) when an
    /// enabled chain reads it, else a plain `RPUSH`.
    fn push_to_list(&self, pipe: &mut Pipeline, list: &str, enqueue: bool, id: &str) {
        if enqueue {
            self.raise_pending(pipe, &self.keys.vcon(id), &self.keys.pending(id));
        }
        pipe.rpush(self.keys.list(list), id).ignore();
    }

    /// The TTL step of `finish` (redis.md §4.2).
    fn ttl_step_call(&self, uuid: Uuid, ttl: u64, decrement: bool) -> Cmd {
        let ttl = asked_ttl(ttl).to_string();
        let decrement = if decrement { "1" } else { "0" };
        evalsha(
            &self.ttl_step,
            &[&self.keys.vcon(uuid), &self.keys.pending(uuid)],
            &[&ttl, decrement],
        )
    }

    /// The TTL steps of a finish: its vCon's, and the replaced vCon's when there is one.
    fn push_ttl_steps(&self, pipe: &mut Pipeline, finish: &Finish<'_>) {
        pipe.add_command(self.ttl_step_call(finish.uuid, finish.ttl, finish.decrement))
            .ignore();
        if let Some(original) = finish.replaced {
            pipe.add_command(self.ttl_step_call(original, finish.ttl, true))
                .ignore();
        }
    }

    /// `BLMOVE source destination LEFT RIGHT wait` on a connection of its own. The connection
    /// is given back only after a clean answer: after a timeout its `BLMOVE` may still be
    /// pending in Redis.
    async fn blocking_move(
        &self,
        source: &str,
        destination: &str,
        wait: Duration,
    ) -> StoreResult<Option<String>> {
        let wait = wait.clamp(SHORTEST_BLOCK, LONGEST_CLAIM_WAIT);
        let taking = tokio::time::timeout(OPERATION_TIMEOUT, self.blocking.take()).await;
        let mut connection = self.conclude("claim", taking, OPERATION_TIMEOUT)?;
        // The answer comes after the wait; only beyond that is Redis late.
        let deadline = wait + RESPONSE_TIMEOUT;
        connection.set_response_timeout(deadline);
        let mut blmove = redis::cmd("BLMOVE");
        blmove
            .arg(source)
            .arg(destination)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(format!("{:.3}", wait.as_secs_f64()));
        let request = blmove.query_async::<Option<String>>(&mut connection);
        // A safety net above the connection's own response timeout.
        let outcome = tokio::time::timeout(deadline + RESPONSE_TIMEOUT, request).await;
        let moved = self.conclude("claim", outcome, deadline)?;
        self.blocking.give_back(connection);
        Ok(moved)
    }

    /// Reads `vcon:*` values in either form (redis.md §1): a pipeline of reads in the
    /// configured form, then one of the other form for the keys that answered `WRONGTYPE`.
    ///
    /// Pipelined `GET`s rather than `MGET`: `MGET` answers nil for a RedisJSON document, which
    /// would make it look missing; a `GET` answers `WRONGTYPE`, which says to retry. It is the
    /// same single round trip.
    async fn read_values(
        &self,
        operation: &'static str,
        keys: &[String],
    ) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let (first, other) = if self.settings.json_module {
            ("JSON.GET", "GET")
        } else {
            ("GET", "JSON.GET")
        };
        let mut values = Vec::with_capacity(keys.len());
        let mut retry = Vec::new();
        for (index, reply) in self
            .read_with(operation, first, keys.iter())
            .await?
            .into_iter()
            .enumerate()
        {
            match reply {
                Read::Value(value) => values.push(value),
                Read::WrongType(_) => {
                    values.push(None);
                    retry.push(index);
                }
            }
        }
        if !retry.is_empty() {
            let replies = self
                .read_with(operation, other, retry.iter().map(|&index| &keys[index]))
                .await?;
            for (index, reply) in retry.into_iter().zip(replies) {
                match reply {
                    Read::Value(value) => values[index] = value,
                    // Another tool's value under a vCon key: missing as far as a reader is
                    // concerned (the storages are asked), never a failure of the others read
                    // with it.
                    Read::WrongType(source) => tracing::warn!(
                        key = %keys[index],
                        error = %source,
                        "{operation}: the value is neither a string nor a RedisJSON document; treated as missing"
                    ),
                }
            }
        }
        Ok(values)
    }

    /// One pipeline of `command key` for each key (`GET` or `JSON.GET`).
    async fn read_with(
        &self,
        operation: &'static str,
        command: &str,
        keys: impl ExactSizeIterator<Item = &String>,
    ) -> StoreResult<Vec<Read>> {
        let mut pipe = Pipeline::with_capacity(keys.len());
        for key in keys {
            pipe.cmd(command).arg(key);
        }
        // Errors are replies here: a WRONGTYPE is an answer, not a failure of the pipeline.
        pipe.ignore_errors();
        let replies: Vec<Value> = self.query(operation, &pipe).await?;
        replies
            .into_iter()
            .map(|reply| Read::from_reply(operation, reply))
            .collect()
    }

    /// Adds the indexing commands of one vCon to `pipe` (api.md §5.13 steps 3–4, §5.24).
    fn push_index(&self, pipe: &mut Pipeline, id: &str, score: IndexScore, parties: &PartyIndex) {
        let member = sorted_set_member(id);
        match score {
            IndexScore::CreatedAt(score) => pipe.zadd(&self.sorted_set, member, score).ignore(),
            IndexScore::KeepOr(score) => pipe
                .cmd("ZADD")
                .arg(&self.sorted_set)
                .arg("NX")
                .arg(score)
                .arg(member)
                .ignore(),
        };
        // The Python server's re-caching writes the bare uuid; only `vcon:<uuid>` is kept.
        pipe.zrem(&self.sorted_set, id).ignore();
        let index_ttl = i64::try_from(self.settings.index_ttl).unwrap_or(i64::MAX);
        for (field, value) in party_entries(parties) {
            let set = self.keys.party(field, value);
            pipe.sadd(&set, id)
                .ignore()
                .expire(&set, index_ttl)
                .ignore();
        }
    }
}

/// One reply of [`RedisStore::read_with`].
enum Read {
    /// The value, or nil for a missing key.
    Value(Option<Vec<u8>>),
    /// The key holds the other form: Redis's answer.
    WrongType(RedisError),
}

impl Read {
    fn from_reply(operation: &'static str, reply: Value) -> StoreResult<Read> {
        match reply {
            Value::Nil => Ok(Read::Value(None)),
            Value::BulkString(bytes) => Ok(Read::Value(Some(bytes))),
            Value::SimpleString(text) => Ok(Read::Value(Some(text.into_bytes()))),
            // A key of another type, or (without the RedisJSON module) `JSON.GET` unknown:
            // either way not a value of this form.
            Value::ServerError(error)
                if error.code() == "WRONGTYPE"
                    || format!("{error:?}").contains("unknown command") =>
            {
                Ok(Read::WrongType(RedisError::from(error)))
            }
            Value::ServerError(error) => Err(classify(operation, RedisError::from(error))),
            other => Err(StoreError::Backend {
                operation,
                source: RedisError::from((
                    ErrorKind::UnexpectedReturnType,
                    "unexpected reply to a read",
                    format!("{other:?}"),
                )),
            }),
        }
    }
}

/// Refuses a server older than [`MINIMUM_VERSION`], whose missing commands would otherwise
/// fail later, one request at a time. A server that does not answer `INFO` (some managed
/// services restrict it) is given the benefit of the doubt.
async fn check_version(connection: &ConnectionManager) -> StoreResult<()> {
    let mut connection = connection.clone();
    let mut info = redis::cmd("INFO");
    info.arg("server");
    let outcome = tokio::time::timeout(
        OPERATION_TIMEOUT,
        info.query_async::<String>(&mut connection),
    );
    let info = match outcome.await {
        Ok(Ok(info)) => info,
        Ok(Err(error)) if unreachable(&error) => return Err(classify("connect", error)),
        Ok(Err(error)) => {
            tracing::debug!(%error, "INFO server refused: Redis version not checked");
            return Ok(());
        }
        Err(_) => {
            return Err(StoreError::TimedOut {
                operation: "connect",
                waited: OPERATION_TIMEOUT,
            })
        }
    };
    match server_version(&info) {
        Some(found) if found < MINIMUM_VERSION => Err(StoreError::OldServer {
            found,
            required: MINIMUM_VERSION,
        }),
        _ => Ok(()),
    }
}

/// `(major, minor)` of the `redis_version:` line of `INFO server` (Valkey reports it too).
fn server_version(info: &str) -> Option<(u32, u32)> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))?
        .trim();
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// Unavailable (a 503) when Redis cannot be reached or cannot serve for now; Backend (a 500)
/// when it answered with an error.
fn classify(operation: &'static str, source: RedisError) -> StoreError {
    if unreachable(&source) {
        StoreError::Unavailable { operation, source }
    } else {
        StoreError::Backend { operation, source }
    }
}

/// Whether `error` says that Redis cannot be reached or cannot serve for now.
fn unreachable(error: &RedisError) -> bool {
    let unreachable = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_cluster_error()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    let lowercase = error.to_string().to_ascii_lowercase();
    unreachable
        || [
            "broken pipe",
            "connection reset",
            "connection refused",
            "timed out",
        ]
        .iter()
        .any(|symptom| lowercase.contains(symptom))
}

/// `EVALSHA` of `script`, built directly so a vCon text is copied once.
fn evalsha(script: &Script, keys: &[&str], args: &[&str]) -> Cmd {
    let mut call = redis::cmd("EVALSHA");
    call.arg(script.get_hash())
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    call
}

/// Whether Redis answered `NOSCRIPT` to a command of the pipeline.
fn lost_script(error: &RedisError) -> bool {
    error.clone().into_server_errors().is_some_and(|errors| {
        errors
            .iter()
            .any(|(_, error)| error.kind() == Some(ServerErrorKind::NoScript))
    })
}

/// A reply of the kind `T` to `operation`, or a Backend error.
fn parse<T: FromRedisValue>(operation: &'static str, reply: Option<Value>) -> StoreResult<T> {
    let reply = reply.unwrap_or(Value::Nil);
    redis::from_redis_value(reply).map_err(|error| StoreError::Backend {
        operation,
        source: error.into(),
    })
}

/// A vCon's text from a reply; bytes that are not text are logged with their key and read as
/// missing (a vCon is JSON text; whatever wrote those bytes, they are no vCon).
fn text_or_missing(operation: &'static str, key: &str, bytes: Vec<u8>) -> Option<String> {
    String::from_utf8(bytes)
        .map_err(|error| {
            tracing::warn!(key, %error, "{operation}: the value is not UTF-8 text; treated as missing")
        })
        .ok()
}

/// Text from a reply; vCons are JSON, so anything else is a backend fault.
fn utf8(operation: &'static str, key: &str, bytes: Vec<u8>) -> StoreResult<String> {
    String::from_utf8(bytes).map_err(|source| StoreError::NotText {
        operation,
        key: key.to_owned(),
        source,
    })
}

#[async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut connection = self.connection.clone();
        let ping = redis::cmd("PING");
        let outcome = tokio::time::timeout(PING_TIMEOUT, ping.query_async(&mut connection)).await;
        self.conclude("ping", outcome, PING_TIMEOUT)
    }

    async fn put_vcon(&self, vcon: VconWrite<'_>, enqueue: &[String]) -> StoreResult<()> {
        let id = vcon.uuid.to_string();
        let vcon_key = self.keys.vcon(&id);
        let pending_key = self.keys.pending(&id);
        let keys = [vcon_key.as_str(), pending_key.as_str()];
        let mut pipe = self.scripted_pipeline(6 + enqueue.len() * 6);
        self.push_write(&mut pipe, &vcon, keys, !enqueue.is_empty());
        self.push_index(
            &mut pipe,
            &id,
            IndexScore::CreatedAt(vcon.score),
            vcon.parties,
        );
        for list in enqueue {
            self.raise_pending(&mut pipe, &vcon_key, &pending_key);
            pipe.rpush(self.keys.list(list), &id).ignore();
        }
        // When the scripts were lost, the rest of the pipeline ran: the vCon and its TTL are
        // written again (both idempotent). In JSON form a worker that took the uuid in between
        // finds it missing and drops it (redis.md §5): rare, and logged.
        let (_, repaired) = self
            .query_scripted("put_vcon", &pipe, |repair| {
                self.push_write(repair, &vcon, keys, !enqueue.is_empty())
            })
            .await?;
        if repaired {
            tracing::warn!(vcon_id = %id, "Redis had lost the put_vcon scripts: wrote the vCon again after its index and queue entries");
        }
        Ok(())
    }

    async fn get_vcon(&self, uuid: Uuid) -> StoreResult<Option<String>> {
        let key = self.keys.vcon(uuid);
        let value = self
            .read_values("get_vcon", std::slice::from_ref(&key))
            .await?
            .pop()
            .flatten();
        Ok(value.and_then(|bytes| text_or_missing("get_vcon", &key, bytes)))
    }

    async fn get_vcons(&self, uuids: &[Uuid]) -> StoreResult<Vec<Option<String>>> {
        if uuids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = uuids.iter().map(|uuid| self.keys.vcon(*uuid)).collect();
        let values = self.read_values("get_vcons", &keys).await?;
        Ok(keys
            .iter()
            .zip(values)
            .map(|(key, value)| value.and_then(|bytes| text_or_missing("get_vcons", key, bytes)))
            .collect())
    }

    async fn delete_vcon(&self, uuid: Uuid, parties: &PartyIndex) -> StoreResult<()> {
        let id = uuid.to_string();
        let mut pipe = Pipeline::with_capacity(
            2 + parties.tel.len() + parties.mailto.len() + parties.name.len(),
        );
        pipe.del(self.keys.vcon(&id))
            .ignore()
            .zrem(
                &self.sorted_set,
                &[sorted_set_member(&id).as_str(), id.as_str()][..],
            )
            .ignore();
        for (field, value) in party_entries(parties) {
            pipe.srem(self.keys.party(field, value), &id).ignore();
        }
        self.query::<Value>("delete_vcon", &pipe).await.map(drop)
    }

    async fn list_vcons(&self, query: ListQuery) -> StoreResult<Vec<String>> {
        let bound = |value: Option<i64>, infinity: &str| {
            value.map_or_else(|| infinity.to_owned(), |v| v.to_string())
        };
        let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
        cmd.arg(&self.sorted_set)
            .arg(bound(query.until, "+inf"))
            .arg(bound(query.since, "-inf"))
            .arg("LIMIT")
            .arg(i64::try_from(query.offset).unwrap_or(i64::MAX))
            .arg(i64::try_from(query.count).unwrap_or(i64::MAX));
        let members: Vec<String> = self.query_cmd("list_vcons", &cmd).await?;
        Ok(members
            .iter()
            .map(|member| member_uuid(member).to_owned())
            .collect())
    }

    async fn search(&self, terms: &SearchTerms) -> StoreResult<Vec<String>> {
        let Some(sets) = search_sets(&self.keys, terms) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<String> = self
            .query_cmd("search", redis::cmd("SINTER").arg(&sets))
            .await?;
        found.sort_unstable();
        Ok(found)
    }

    async fn enqueue(&self, list: &str, uuids: &[Uuid]) -> StoreResult<()> {
        if uuids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = uuids.iter().map(Uuid::to_string).collect();
        let mut pipe = Pipeline::with_capacity(uuids.len() * 5 + 1);
        for id in &ids {
            self.raise_pending(&mut pipe, &self.keys.vcon(id), &self.keys.pending(id));
        }
        // Every count is raised before any uuid becomes visible to a consumer.
        pipe.rpush(self.keys.list(list), &ids).ignore();
        self.query::<Value>("enqueue", &pipe).await.map(drop)
    }

    async fn list_len(&self, list: &str) -> StoreResult<u64> {
        self.query_cmd("list_len", redis::cmd("LLEN").arg(self.keys.list(list)))
            .await
    }

    async fn pop_front(&self, list: &str, limit: usize) -> StoreResult<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let popped: Option<Vec<String>> = self
            .query_cmd(
                "pop_front",
                redis::cmd("LPOP").arg(self.keys.list(list)).arg(limit),
            )
            .await?;
        Ok(popped.unwrap_or_default())
    }

    async fn dlq_items(&self, list: &str) -> StoreResult<Vec<String>> {
        self.query_cmd(
            "dlq_items",
            redis::cmd("LRANGE").arg(self.keys.dlq(list)).arg(0).arg(-1),
        )
        .await
    }

    async fn dlq_reprocess(&self, list: &str, count: usize) -> StoreResult<usize> {
        if count == 0 {
            return Ok(0);
        }
        let dlq = self.keys.dlq(list);
        let list = self.keys.list(list);
        let stop = i64::try_from(count).unwrap_or(i64::MAX) - 1;
        let head: Vec<String> = self
            .query_cmd(
                "dlq_reprocess",
                redis::cmd("LRANGE").arg(&dlq).arg(0).arg(stop),
            )
            .await?;
        if head.is_empty() {
            return Ok(0);
        }
        // Race: a concurrent reprocessor of the same DLQ may move some of these items first.
        // Each LMOVE is atomic, so no item is lost or duplicated, but the pending count raised
        // here may belong to an item the other caller moved (its count then ends up one too
        // high: the vCon keeps no TTL until the pending hash's 30-day safety TTL), and an item
        // moved here may not have had its own count raised (it then gets its TTL a run early).
        // Neither loses a vCon; a cross-slot Lua script, the only exact fix, would break Cluster.
        let mut pipe = Pipeline::with_capacity(head.len() * 6);
        for id in &head {
            self.raise_pending(
                &mut pipe,
                &self.keys.vcon(id.as_str()),
                &self.keys.pending(id.as_str()),
            );
            pipe.cmd("LMOVE")
                .arg(&dlq)
                .arg(&list)
                .arg("LEFT")
                .arg("RIGHT");
        }
        let replies: Vec<Value> = self.query("dlq_reprocess", &pipe).await?;
        // Replies alternate: EXEC, LMOVE.
        Ok(replies
            .chunks(2)
            .filter(|pair| pair.get(1).is_some_and(|moved| *moved != Value::Nil))
            .count())
    }

    async fn storage_dlq_items(&self, storage: &str) -> StoreResult<Vec<String>> {
        self.query_cmd(
            "storage_dlq_items",
            redis::cmd("LRANGE")
                .arg(self.keys.storage_dlq(storage))
                .arg(0)
                .arg(-1),
        )
        .await
    }

    async fn chain_status(&self, chain: ChainLists<'_>) -> StoreResult<ChainStatus> {
        let mut pipe = Pipeline::new();
        for list in chain.ingress_lists {
            pipe.llen(self.keys.list(list)).llen(self.keys.dlq(list));
        }
        for list in chain.egress_lists {
            pipe.llen(self.keys.list(list));
        }
        for storage in chain.storages {
            pipe.llen(self.keys.storage_dlq(storage));
        }
        pipe.hgetall(self.keys.chain_stats(chain.name))
            .smembers(self.keys.instances());
        let mut replies = self
            .query::<Vec<Value>>("chain_status", &pipe)
            .await?
            .into_iter();

        let mut status = ChainStatus::default();
        for list in chain.ingress_lists {
            let depth = parse("chain_status", replies.next())?;
            let dlq_depth = parse("chain_status", replies.next())?;
            status.ingress.push((list.clone(), depth, dlq_depth));
        }
        for list in chain.egress_lists {
            status
                .egress
                .push((list.clone(), parse("chain_status", replies.next())?));
        }
        for storage in chain.storages {
            status
                .storage_dlq
                .push((storage.clone(), parse("chain_status", replies.next())?));
        }
        let stats: std::collections::HashMap<String, String> =
            parse("chain_status", replies.next())?;
        let counter = |name: &str| {
            stats
                .get(name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        status.processed = counter("processed");
        status.halted = counter("halted");
        status.failed = counter("failed");
        let instances: Vec<String> = parse("chain_status", replies.next())?;

        if instances.is_empty() || chain.ingress_lists.is_empty() {
            return Ok(status);
        }
        // Only live instances count: a dead one's items are about to be moved back (§3.5).
        let mut pipe = Pipeline::with_capacity(instances.len() * (1 + chain.ingress_lists.len()));
        for instance in &instances {
            pipe.exists(self.keys.instance(instance));
            for list in chain.ingress_lists {
                pipe.llen(self.keys.processing(list, instance));
            }
        }
        let replies: Vec<Value> = self.query("chain_status", &pipe).await?;
        for per_instance in replies.chunks(1 + chain.ingress_lists.len()) {
            let Some((alive, depths)) = per_instance.split_first() else {
                continue;
            };
            if parse::<bool>("chain_status", Some(alive.clone()))? {
                for depth in depths {
                    status.in_flight += parse::<u64>("chain_status", Some(depth.clone()))?;
                }
            }
        }
        Ok(status)
    }

    async fn index_all(&self) -> StoreResult<u64> {
        let pattern = self.keys.vcon_pattern();
        let mut cursor: u64 = 0;
        let mut indexed = 0;
        // SCAN may return a key twice (when Redis rehashes during the walk); such a key is
        // indexed twice, which is harmless, and counted twice.
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, names): (u64, Vec<Vec<u8>>) = self.query_cmd("index_all", &scan).await?;
            let keys: Vec<String> = names
                .into_iter()
                .filter_map(|name| match String::from_utf8(name) {
                    Ok(key) => Some(key),
                    Err(name) => {
                        tracing::warn!(key = ?name.as_bytes(), "index_vcons: skipped a key that is not UTF-8");
                        None
                    }
                })
                .collect();
            if !keys.is_empty() {
                indexed += self.index_batch(&keys).await?;
            }
            if next == 0 {
                return Ok(indexed);
            }
            cursor = next;
        }
    }

    async fn register_instance(&self, id: &str, info: &str, ttl: u64) -> StoreResult<()> {
        let mut pipe = Pipeline::with_capacity(2);
        pipe.sadd(self.keys.instances(), id)
            .ignore()
            .set_ex(self.keys.instance(id), info, ttl.max(1))
            .ignore();
        self.query::<Value>("register_instance", &pipe)
            .await
            .map(drop)
    }

    async fn heartbeat(&self, id: &str, info: &str, ttl: u64) -> StoreResult<bool> {
        let mut pipe = Pipeline::with_capacity(2);
        // SET … GET answers the value it replaced: nil when the heartbeat had expired. The
        // SADD restores the membership a recovery by another instance removed.
        pipe.cmd("SET")
            .arg(self.keys.instance(id))
            .arg(info)
            .arg("EX")
            .arg(ttl.max(1))
            .arg("GET")
            .sadd(self.keys.instances(), id)
            .ignore();
        let (previous,): (Option<Vec<u8>>,) = self.query("heartbeat", &pipe).await?;
        Ok(previous.is_some())
    }

    async fn note_consumed_list(&self, id: &str, list: &str) -> StoreResult<()> {
        self.query_cmd(
            "note_consumed_list",
            redis::cmd("SADD")
                .arg(self.keys.instance_lists(id))
                .arg(list),
        )
        .await
    }

    async fn claim(
        &self,
        list: &str,
        instance_id: &str,
        wait: Duration,
    ) -> StoreResult<Option<String>> {
        let source = self.keys.list(list);
        let processing = self.keys.processing(list, instance_id);
        let item = if wait.is_zero() {
            let mut lmove = redis::cmd("LMOVE");
            lmove.arg(&source).arg(&processing).arg("LEFT").arg("RIGHT");
            self.query_cmd::<Option<String>>("claim", &lmove).await?
        } else {
            self.blocking_move(&source, &processing, wait).await?
        };
        let Some(item) = item else {
            return Ok(None);
        };
        let mut pipe = Pipeline::with_capacity(2);
        pipe.persist(self.keys.vcon(item.as_str()))
            .ignore()
            .cmd("LPOP")
            .arg(self.keys.context(list, item.as_str()))
            .ignore();
        if let Err(error) = self.query::<Value>("claim", &pipe).await {
            // The item is in the processing list now: handing it over beats stranding it
            // there. Without the PERSIST, a TTL a Python producer set may run out in flight.
            tracing::warn!(vcon_id = %item, list, error = %crate::report(&error), "claimed, but could not remove the vCon's TTL and trace context");
        }
        Ok(Some(item))
    }

    async fn write_back(&self, uuid: Uuid, text: &str) -> StoreResult<()> {
        let key = self.keys.vcon(uuid);
        if !self.settings.json_module {
            // SET drops a TTL, and a vCon in flight has none to keep.
            return self
                .query_cmd("write_back", redis::cmd("SET").arg(&key).arg(text))
                .await;
        }
        let write = || evalsha(&self.write_json, &[&key], &[text]);
        let mut pipe = self.scripted_pipeline(1);
        pipe.add_command(write()).ignore();
        self.query_scripted("write_back", &pipe, |repair| {
            repair.add_command(write()).ignore();
        })
        .await
        .map(drop)
    }

    async fn finish(&self, finish: &Finish<'_>) -> StoreResult<()> {
        let id = finish.uuid.to_string();
        let pushes = finish.egress.len() + finish.routes.len();
        let mut pipe = self.scripted_pipeline(4 + finish.failed_storages.len() + pushes * 6);
        if finish.outcome == RunOutcome::Failed {
            pipe.rpush(self.keys.dlq(finish.ingress_list), finish.item)
                .ignore();
        }
        for storage in finish.failed_storages {
            pipe.rpush(self.keys.storage_dlq(storage), &id).ignore();
        }
        if finish.failed_storages.is_empty() {
            for Push { list, enqueue } in finish.egress {
                self.push_to_list(&mut pipe, list, *enqueue, &id);
            }
        } else if !finish.egress.is_empty() {
            let record = EgressPending::new(finish.chain, finish.egress, finish.failed_storages);
            let mut set = redis::cmd("SET");
            set.arg(self.keys.egress_pending(&id)).arg(record.to_text());
            if self.settings.dlq_ttl > 0 {
                set.arg("EX").arg(self.settings.dlq_ttl);
            }
            pipe.add_command(set).ignore();
        }
        for Push { list, enqueue } in finish.routes {
            self.push_to_list(&mut pipe, list, *enqueue, &id);
        }
        self.push_ttl_steps(&mut pipe, finish);
        pipe.hincr(
            self.keys.chain_stats(finish.chain),
            finish.outcome.stats_field(),
            1,
        )
        .ignore()
        .lrem(
            self.keys
                .processing(finish.ingress_list, finish.instance_id),
            1,
            finish.item,
        )
        .ignore();
        // When the script was lost, everything else ran and only the TTL step is missing:
        // it runs once, after them, which is still before anything could depend on it.
        let (_, repaired) = self
            .query_scripted("finish", &pipe, |repair| {
                self.push_ttl_steps(repair, finish);
            })
            .await?;
        if repaired {
            tracing::warn!(vcon_id = %id, "Redis had lost the TTL step script: ran it again after the rest of the finish");
        }
        Ok(())
    }

    async fn dead_instances(&self, own_id: &str) -> StoreResult<Vec<String>> {
        let ids: Vec<String> = self
            .query_cmd(
                "dead_instances",
                redis::cmd("SMEMBERS").arg(self.keys.instances()),
            )
            .await?;
        let mut others: Vec<String> = ids.into_iter().filter(|id| id != own_id).collect();
        if others.is_empty() {
            return Ok(others);
        }
        let mut pipe = Pipeline::with_capacity(others.len());
        for id in &others {
            pipe.exists(self.keys.instance(id));
        }
        let alive: Vec<bool> = self.query("dead_instances", &pipe).await?;
        let mut alive = alive.into_iter();
        others.retain(|_| !alive.next().unwrap_or(true));
        others.sort_unstable();
        Ok(others)
    }

    async fn recover_instance(&self, id: &str) -> StoreResult<Vec<(String, u64)>> {
        let lists_key = self.keys.instance_lists(id);
        let mut lists: Vec<String> = self
            .query_cmd("recover_instance", redis::cmd("SMEMBERS").arg(&lists_key))
            .await?;
        lists.sort_unstable();
        let mut recovered = Vec::with_capacity(lists.len());
        for list in lists {
            let processing = self.keys.processing(&list, id);
            let destination = self.keys.list(&list);
            let mut moved = 0;
            loop {
                // Right to left, one at a time: the oldest item ends at the head.
                let mut pipe = Pipeline::with_capacity(RECOVERY_BATCH);
                for _ in 0..RECOVERY_BATCH {
                    pipe.cmd("LMOVE")
                        .arg(&processing)
                        .arg(&destination)
                        .arg("RIGHT")
                        .arg("LEFT");
                }
                let replies: Vec<Option<Vec<u8>>> = self.query("recover_instance", &pipe).await?;
                let batch = replies.iter().filter(|reply| reply.is_some()).count();
                moved += batch as u64;
                if batch < RECOVERY_BATCH {
                    break;
                }
            }
            recovered.push((list, moved));
        }
        let mut pipe = Pipeline::with_capacity(2);
        pipe.del(&lists_key)
            .ignore()
            .srem(self.keys.instances(), id)
            .ignore();
        self.query::<Value>("recover_instance", &pipe).await?;
        Ok(recovered)
    }

    async fn processing_items(&self, list: &str, instance_id: &str) -> StoreResult<Vec<String>> {
        let mut lrange = redis::cmd("LRANGE");
        lrange
            .arg(self.keys.processing(list, instance_id))
            .arg(0)
            .arg(-1);
        self.query_cmd("processing_items", &lrange).await
    }

    async fn return_item(&self, list: &str, instance_id: &str, item: &str) -> StoreResult<bool> {
        // Both keys share the list's hash slot (`{<list>}:processing:<id>`).
        let mut connection = self.connection.clone();
        let mut invocation = self
            .return_item
            .key(self.keys.processing(list, instance_id));
        invocation.key(self.keys.list(list)).arg(item);
        let call = invocation.invoke_async::<i64>(&mut connection);
        Ok(self.settle("return_item", call).await? == 1)
    }

    async fn deregister_instance(&self, id: &str) -> StoreResult<()> {
        self.query_cmd(
            "deregister_instance",
            redis::cmd("DEL").arg(self.keys.instance(id)),
        )
        .await
    }

    async fn storage_dlq_head(&self, storage: &str, count: usize) -> StoreResult<Vec<String>> {
        if count == 0 {
            return Ok(Vec::new()); // LRANGE 0 -1 would read the whole list
        }
        let stop = i64::try_from(count).unwrap_or(i64::MAX) - 1;
        let mut lrange = redis::cmd("LRANGE");
        lrange.arg(self.keys.storage_dlq(storage)).arg(0).arg(stop);
        self.query_cmd("storage_dlq_head", &lrange).await
    }

    async fn storage_dlq_done(
        &self,
        storage: &str,
        uuid: &str,
        released: bool,
        enqueue_lists: &[String],
    ) -> StoreResult<EgressRelease> {
        let record = self.keys.egress_pending(uuid);
        let release = if released {
            // The record's slot is its own: the pushes cannot join the script (Cluster), so
            // they follow in a second round trip, with the entry's removal.
            let call = || evalsha(&self.release_egress, &[&record], &[storage]);
            let mut pipe = self.scripted_pipeline(1);
            pipe.add_command(call());
            let (replies, _) = self
                .query_scripted("storage_dlq_done", &pipe, |repair| {
                    repair.add_command(call());
                })
                .await?;
            egress_release(replies)?
        } else {
            EgressRelease::NoRecord
        };
        let mut pipe = Pipeline::new();
        if let EgressRelease::Released(lists) = &release {
            for list in lists {
                self.push_to_list(&mut pipe, list, enqueue_lists.contains(list), uuid);
            }
            pipe.del(&record).ignore();
        }
        pipe.lrem(self.keys.storage_dlq(storage), 1, uuid).ignore();
        self.query::<Value>("storage_dlq_done", &pipe).await?;
        Ok(release)
    }

    async fn put_blob(&self, name: &str, text: &str, ttl: u64) -> StoreResult<()> {
        let mut set = redis::cmd("SET");
        set.arg(self.keys.blob(name)).arg(text);
        if ttl > 0 {
            set.arg("EX").arg(ttl);
        }
        self.query_cmd("put_blob", &set).await
    }

    async fn get_blob(&self, name: &str) -> StoreResult<Option<String>> {
        let key = self.keys.blob(name);
        let value: Option<Vec<u8>> = self
            .query_cmd("get_blob", redis::cmd("GET").arg(&key))
            .await?;
        value.map(|bytes| utf8("get_blob", &key, bytes)).transpose()
    }

    async fn delete_blob(&self, name: &str) -> StoreResult<bool> {
        let deleted: u64 = self
            .query_cmd("delete_blob", redis::cmd("DEL").arg(self.keys.blob(name)))
            .await?;
        Ok(deleted > 0)
    }
}

/// The reply of [`RELEASE_EGRESS_SCRIPT`], in a pipeline's replies.
fn egress_release(replies: Value) -> StoreResult<EgressRelease> {
    let reply = match replies {
        Value::Array(mut replies) => replies.pop(),
        other => Some(other),
    };
    match reply {
        Some(Value::Int(0)) => Ok(EgressRelease::NoRecord),
        Some(Value::Int(1)) => Ok(EgressRelease::Waiting),
        lists => parse("storage_dlq_done", lists).map(EgressRelease::Released),
    }
}

impl RedisStore {
    /// Reads and indexes one `SCAN` batch: one read round trip, one write round trip.
    async fn index_batch(&self, keys: &[String]) -> StoreResult<u64> {
        // Read in chunks: vCons with inline media can be megabytes each, and one reply of a
        // whole SCAN batch could then hold gigabytes in Redis's output buffer and here.
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(READ_CHUNK) {
            values.extend(self.read_values("index_all", chunk).await?);
        }
        let receipt = chrono::Utc::now().timestamp();
        let mut pipe = Pipeline::new();
        let mut indexed = 0;
        for (key, value) in keys.iter().zip(values) {
            let Some(bytes) = value else {
                continue; // expired or deleted since the SCAN
            };
            let Ok(text) = String::from_utf8(bytes) else {
                tracing::warn!(key, "index_vcons: skipped a value that is not UTF-8");
                continue;
            };
            if let Some(entry) = describe_for_index(&self.keys, key, &text, receipt) {
                self.push_index(&mut pipe, &entry.id, entry.score(), &entry.parties);
                indexed += 1;
            }
        }
        if !pipe.is_empty() {
            self.query::<Value>("index_all", &pipe).await?;
        }
        Ok(indexed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::TimedOut,
            std::io::ErrorKind::BrokenPipe,
        ] {
            let error = RedisError::from(std::io::Error::from(kind));
            assert!(classify("get_vcon", error).is_unavailable(), "{kind:?}");
        }
    }

    #[test]
    fn answers_with_an_error_are_backend() {
        let wrong = RedisError::from((ErrorKind::UnexpectedReturnType, "not a list"));
        assert!(!classify("list_len", wrong).is_unavailable());
        let client = RedisError::from((ErrorKind::Client, "bad argument"));
        assert!(!classify("list_len", client).is_unavailable());
    }

    #[test]
    fn errors_name_the_operation_and_give_the_redis_error_as_their_source() {
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let error = classify("put_vcon", refused);
        assert_eq!(error.to_string(), "Redis cannot be reached (put_vcon)");
        assert!(crate::report(&error)
            .to_string()
            .starts_with("Redis cannot be reached (put_vcon): "));
        let source = std::error::Error::source(&error).expect("a source");
        let redis = source
            .downcast_ref::<RedisError>()
            .expect("the Redis error");
        assert!(redis.is_connection_refusal());

        let refused = RedisError::from((ErrorKind::Client, "bad argument"));
        let error = classify("finish", refused);
        assert!(crate::report(&error)
            .to_string()
            .starts_with("Redis answered finish with an error: "));
        assert!(std::error::Error::source(&error)
            .is_some_and(|source| source.downcast_ref::<RedisError>().is_some()));
    }

    #[test]
    fn server_version_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(server_version(info), Some((7, 0)));
        assert!(server_version("redis_version:6.0.9\r\n").unwrap() < MINIMUM_VERSION);
        assert!(server_version("redis_version:6.2.0\r\n").unwrap() >= MINIMUM_VERSION);
        assert_eq!(server_version("# Server\r\n"), None);
    }

    #[test]
    fn the_scripts_read_the_keys_and_arguments_they_are_given() {
        // The calls are built by hand; their shape must match what the scripts read.
        for argument in ["KEYS[1]", "KEYS[2]", "ARGV[1]"] {
            assert!(SETTLE_TTL_SCRIPT.contains(argument), "{argument}");
        }
        assert!(!SETTLE_TTL_SCRIPT.contains("ARGV[2]"));
        assert!(WRITE_JSON_SCRIPT.contains("KEYS[1]") && WRITE_JSON_SCRIPT.contains("ARGV[1]"));
        assert!(!WRITE_JSON_SCRIPT.contains("KEYS[2]"));
        for argument in ["KEYS[1]", "KEYS[2]", "ARGV[1]", "ARGV[2]"] {
            assert!(TTL_STEP_SCRIPT.contains(argument), "{argument}");
        }
        assert!(!TTL_STEP_SCRIPT.contains("KEYS[3]") && !TTL_STEP_SCRIPT.contains("ARGV[3]"));
        assert!(RELEASE_EGRESS_SCRIPT.contains("KEYS[1]"));
        assert!(RELEASE_EGRESS_SCRIPT.contains("ARGV[1]"));
        assert!(!RELEASE_EGRESS_SCRIPT.contains("KEYS[2]"));
        assert!(!RELEASE_EGRESS_SCRIPT.contains("ARGV[2]"));
    }

    #[test]
    fn egress_release_replies() {
        let reply = |value| Value::Array(vec![value]);
        assert_eq!(
            egress_release(reply(Value::Int(0))).unwrap(),
            EgressRelease::NoRecord
        );
        assert_eq!(
            egress_release(reply(Value::Int(1))).unwrap(),
            EgressRelease::Waiting
        );
        let lists = Value::Array(vec![
            Value::BulkString(b"out".to_vec()),
            Value::BulkString(b"next".to_vec()),
        ]);
        assert_eq!(
            egress_release(reply(lists)).unwrap(),
            EgressRelease::Released(vec!["out".into(), "next".into()])
        );
        assert!(egress_release(reply(Value::Int(7))).is_err());
    }
}
