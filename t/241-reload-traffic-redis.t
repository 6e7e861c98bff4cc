# Reload under traffic with the dedupe table in Redis (amonitor_redis): the
# scenario of t/240-reload-traffic.t against a private redis-server, 20
# reloads (AMON_RELOADS for more).  On top of what t/240 checks, every
# msg_id asked again after the lease of the claims the exiting workers
# may have left open is still a duplicate.

use strict;
use warnings;

use FindBin;

$ENV{AMON_RELOAD_STORE} = 'redis';
$ENV{AMON_RELOADS} //= 20;
do "$FindBin::Bin/240-reload-traffic.t" or die $@ || $!;
