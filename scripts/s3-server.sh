#!/bin/bash
# Runs a real S3 server for tests and local development: a one-node Ceph cluster (mon + osd +
# RADOS Gateway) on loopback, no cephx auth.
#
#   scripts/s3-server.sh [memstore|bluestore]      stop with scripts/s3-server-stop.sh
#
# Serves http://127.0.0.1:9380 (path-style), access key `testkey`, secret `testsecret`, region
# us-east-1, with the bucket `portfolio-test`. For the SDK:
#   export AWS_ENDPOINT_URL_S3=http://127.0.0.1:9380 AWS_REGION=us-east-1 \
#          AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret
#
# Idempotent: exits 0 at once when the gateway already answers (after making sure the bucket
# exists). Otherwise it stops any leftover daemons and starts an empty cluster (~15 s).
# memstore (default) keeps everything in RAM (8 GiB device) and is lost when the daemons stop;
# deleted objects are reclaimed by RGW's garbage collector after about two minutes. Use
# bluestore (a sparse 20 GiB file in the state directory) for benchmarks with many large uploads.
#
# Environment: PORTFOLIO_CEPH_DIR (state, default /tmp/portfolio-ceph),
#              PORTFOLIO_CEPH_STORE (memstore|bluestore, overridden by $1),
#              PORTFOLIO_S3_BUCKET (default portfolio-test).
# Ports: 9380 (S3), 9330 (mon), 9340-9369 (osd).
set -euo pipefail

STORE=${1:-${PORTFOLIO_CEPH_STORE:-memstore}}
D=${PORTFOLIO_CEPH_DIR:-/tmp/portfolio-ceph}
BUCKET=${PORTFOLIO_S3_BUCKET:-portfolio-test}
PORT=9380
URL=http://127.0.0.1:$PORT
ACCESS=testkey
SECRET=testsecret

case "$STORE" in memstore|bluestore) ;; *) echo "usage: $0 [memstore|bluestore]" >&2; exit 2 ;; esac

answers() { curl -s -o /dev/null -m 2 "$URL/"; }

ensure_bucket() {
  # A bucket is created by an S3 PUT; radosgw answers 200 when the caller already owns it.
  # curl < 8.x does not add x-amz-content-sha256 itself, and S3 rejects a signature without it.
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 10 --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$ACCESS:$SECRET" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -X PUT "$URL/$BUCKET")
  case "$code" in
    200|409) ;;
    *) echo "s3-server: creating bucket $BUCKET failed (HTTP $code)" >&2; return 1 ;;
  esac
}

if answers; then
  ensure_bucket
  exit 0
fi

# Debian packages (already present on the development machines and in the CI image).
need=()
for pair in radosgw:radosgw ceph-mon:ceph-mon ceph-osd:ceph-osd ceph:ceph-common \
            monmaptool:ceph-common ceph-authtool:ceph-common radosgw-admin:radosgw curl:curl bc:bc; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "s3-server: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
    radosgw ceph-mon ceph-osd ceph-common curl bc >/dev/null
fi

# One starter at a time (several test runs may call this together); the lock lives outside $D
# because a fresh start wipes $D.
mkdir -p "$(dirname "$D")"
exec 9>"$D.lock"
flock 9
if answers; then ensure_bucket; exit 0; fi

# The daemons below are started with 9>&- so that they do not inherit (and hold) the lock.
# Leftovers of an earlier run that no longer answers: stop its daemons, then start afresh.
PORTFOLIO_CEPH_DIR=$D "$(dirname "$0")/s3-server-stop.sh" >/dev/null 2>&1 || true

T0=$(date +%s.%N)
lap() { echo "  +$(echo "$(date +%s.%N) - $T0" | bc | cut -c1-5)s $1" >&2; }
rm -rf "$D"
mkdir -p "$D"/{mon,osd/ceph-0,run,log,rgw}
FSID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<CONF
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:9330]
mon_initial_members = a
public_network = 127.0.0.0/8
ms_bind_port_min = 9340
ms_bind_port_max = 9369
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without these radosgw loops on "get_initial_auth_request returned -13" when auth is off.
ms_mon_client_mode = crc
ms_mon_service_mode = crc
ms_mon_cluster_mode = crc
ms_client_mode = crc
ms_service_mode = crc
ms_cluster_mode = crc
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
run_dir = $D/run
admin_socket = $D/run/\$name.asok
log_file = $D/log/\$name.log
pid_file = $D/run/\$name.pid
mon_data = $D/mon/\$cluster-\$id
osd_data = $D/osd/\$cluster-\$id
keyring = $D/keyring
osd_crush_chooseleaf_type = 0
[osd]
osd_objectstore = $STORE
memstore_device_bytes = 8589934592
# bluestore's block file must lie outside osd_data.
bluestore_block_path = $D/osd/block-0.img
bluestore_block_create = true
bluestore_block_size = 21474836480
bluestore_fsck_on_mkfs = false
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64
[client.rgw.a]
# tcp_nodelay: without it every small GET waits ~40 ms (Nagle + delayed ACK).
rgw_frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw_data = $D/rgw
rgw_dns_name = localhost
# Reclaim deleted and overwritten objects after a minute instead of two hours: memstore keeps
# them in RAM until RGW's garbage collector runs.
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
rgw_gc_processor_max_time = 60
CONF
C=(-c "$D/ceph.conf")

fail() { echo "s3-server: $1 (logs in $D/log)" >&2; exit 1; }

monmaptool --create --addv a "[v2:127.0.0.1:9330]" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
ceph-mon "${C[@]}" -i a 9>&-
ok=0; for _ in $(seq 75); do ceph "${C[@]}" -s >/dev/null 2>&1 && { ok=1; break; }; sleep 0.2; done
[ $ok = 1 ] || fail "ceph-mon did not start"
lap "mon up"

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
ID=$(ceph "${C[@]}" osd new "$OSD_UUID")
ceph-osd "${C[@]}" -i "$ID" --mkfs --osd-uuid "$OSD_UUID" >"$D/log/osd-mkfs.log" 2>&1 || fail "ceph-osd mkfs failed"
ceph-osd "${C[@]}" -i "$ID" 9>&- 2>>"$D/log/osd.out"
ok=0; for _ in $(seq 150); do ceph "${C[@]}" osd stat 2>/dev/null | grep -q "1 up" && { ok=1; break; }; sleep 0.2; done
[ $ok = 1 ] || fail "ceph-osd did not come up"
lap "osd up"

radosgw "${C[@]}" -n client.rgw.a </dev/null >"$D/log/rgw.out" 2>&1 9>&-
ok=0; for _ in $(seq 300); do answers && { ok=1; break; }; sleep 0.2; done
[ $ok = 1 ] || fail "radosgw did not answer on $URL"
lap "rgw serving"

radosgw-admin "${C[@]}" user create --uid=test --display-name=test \
  --access-key="$ACCESS" --secret="$SECRET" >/dev/null
ensure_bucket
echo "s3-server: ceph($STORE) + radosgw on $URL, bucket $BUCKET, state in $D," \
  "ready in $(echo "$(date +%s.%N) - $T0" | bc | cut -c1-5) s"
