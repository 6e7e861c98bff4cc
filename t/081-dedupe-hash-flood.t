# msg_ids that collide: the zone's index and the workers' tables hash
# msg_ids and target ids with a random key, so that a panel cannot choose
# ids that fall into one run of the index.  With the former unkeyed hash
# anyone could make any number of printable msg_ids with one hash (its
# last 8-byte step is invertible); each action then compared itself with
# every earlier one of them, so 20,000 cost the worker about five times
# the CPU of 20,000 ordinary ones, and the cost grows with the square.
# Here the worker's CPU time for 20,000 such actions must stay within
# twice that of 20,000 random ones, each action run once and acked.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Process qw(proc_cpu_ms);
use File::Temp qw(tempdir);

my $N = 20000;
my $root = "$FindBin::Bin/..";
my $core = "$root/build/libamon_core.a";

ok(-f $core, 'the core library is built') or BAIL_OUT('run "make unit"');

# printable 24-byte ids that all have one amon_hash(): the first two
# 8-byte words at random, the third solved for a fixed final state
my $dir = tempdir(CLEANUP => 1);
open(my $fh, '>', "$dir/collide.c") or die $!;
print $fh <<'EOC';
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "amon_core.h"

#define M 0xff51afd7ed558ccdULL

static uint64_t s = 88172645463325252ULL;

static uint64_t next(void)
{
    s ^= s << 13; s ^= s >> 7; s ^= s << 17;
    return s;
}

static uint64_t inverse(uint64_t a)
{
    uint64_t x = a;
    for (int i = 0; i < 6; i++) x *= 2 - a * x;
    return x;
}

static uint64_t unshift(uint64_t y)
{
    uint64_t x = y;
    for (int i = 0; i < 3; i++) x = y ^ (x >> 29);
    return x;
}

static int printable(uint64_t w)
{
    for (int i = 0; i < 8; i++) {
        unsigned c = (w >> (8 * i)) & 0xff;
        if (c < 0x30 || c > 0x7a || c == '\\') return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    long n = atol(argv[1]), made = 0;
    uint64_t x = inverse(M) * unshift(0x0123456789abcdefULL), h, w[3];
    uint32_t first = 0;
    unsigned char id[25];

    while (made < n) {
        for (int i = 0; i < 16; i++)
            ((unsigned char *) w)[i] = 0x30 + next() % 43;
        h = 0x9e3779b97f4a7c15ULL ^ 24;
        for (int b = 0; b < 2; b++) { h = (h ^ w[b]) * M; h ^= h >> 29; }
        w[2] = h ^ x;
        if (!printable(w[2])) continue;
        memcpy(id, w, 24);
        id[24] = 0;
        if (made == 0) first = amon_hash(id, 24);
        if (amon_hash(id, 24) != first) {
            fprintf(stderr, "not a collision: amon_hash changed\n");
            return 1;
        }
        printf("%s\n", id);
        made++;
    }
    return 0;
}
EOC
close $fh;

my $cc = `cc -O2 -I'$root/src/core' -o '$dir/collide' '$dir/collide.c' '$core' 2>&1`;
is($?, 0, 'the generator builds') or diag($cc);
my @colliding = split /\n/, `'$dir/collide' $N`;
is(scalar @colliding, $N, "$N printable msg_ids with one unkeyed hash");

my $t = Test::AMonitor->new(workers => 1);
my $sdk = fake_sdk(port => $t->port(1), target_id => 't1',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 64m;
    amonitor_target t1 ws://127.0.0.1:%%PORT_1%%/;
EOC
    config => 'location = /ws/panel { amonitor_panel on; }',
)->run;

ok($sdk->wait_connections(1), 'the worker dialed the SDK');
my ($pid) = $t->worker_pids;

sub cpu_seconds { proc_cpu_ms($pid) / 1000 }

# the actions in windows of 500; each must get one ack; the worker's CPU
sub run_actions {
    my ($p, @ids) = @_;
    my ($acks, $c0) = (0, cpu_seconds());

    while (my @w = splice(@ids, 0, 500)) {
        $p->send_json({ msg_id => $_, type => 'action', target_id => 't1',
            payload => { action => 'restart', params => {} } }) for @w;
        my %want = map { $_ => 1 } @w;
        wait_for(sub {
            while (my $m = shift @{ $p->{queue} }) {
                my $j = $m->{json};
                next unless ref $j eq 'HASH'
                    && ($j->{type} // '') eq 'action_ack';
                $acks++ if delete $want{ $j->{payload}{action_msg_id} // '' };
            }
            !%want
        }, 60);
    }

    return ($acks, cpu_seconds() - $c0);
}

my $p = $t->panel('/ws/panel?targets=');

my @random = map { sprintf('r-%08x-%08x', int(rand(2**32)), $_) } 1 .. $N;
my ($racks, $rcpu) = run_actions($p, @random);
is($racks, $N, "$N random msg_ids acked");

my ($cacks, $ccpu) = run_actions($p, @colliding);
is($cacks, $N, "$N colliding msg_ids acked");

cmp_ok($ccpu, '<', 2 * $rcpu + 0.2,
    sprintf('colliding ids cost the worker %.2f s, random ones %.2f s',
        $ccpu, $rcpu));

is(scalar(grep { $_ > 1 } values %{ $sdk->{executed} }), 0,
    'no action ran twice');

# a repeat of a colliding id is still a duplicate
$p->send_json({ msg_id => $colliding[7], type => 'action',
    target_id => 't1', payload => { action => 'restart', params => {} } });
my $d = $p->answer_to($colliding[7], 5);
ok($d && $d->{payload}{duplicate}, 'a repeated one is a duplicate');

$t->stop;
$sdk->stop;

done_testing;
