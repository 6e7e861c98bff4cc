# Runs the protocol core's cmocka unit tests (build/unit/test_*, built by
# `make unit` from t/unit/test_*.c) with TAP output, one subtest per
# binary.  A binary missing for a source, a non-zero exit, a "not ok" or
# fewer results than planned fails.
#
# TEST_AMON_UNIT_WRAPPER runs each binary under a command, e.g.
#   TEST_AMON_UNIT_WRAPPER="valgrind --error-exitcode=1 --leak-check=full"

use strict;
use warnings;

use FindBin;
use File::Basename qw(basename);
use File::Temp qw(tempfile);
use Test::More;

my $root = "$FindBin::Bin/..";
my @sources = sort glob("$root/t/unit/test_*.c");
my %bins = map { basename($_) => $_ } grep { -f && -x }
    glob("$root/build/unit/test_*");
my @wrapper = split ' ', $ENV{TEST_AMON_UNIT_WRAPPER} // '';

ok(scalar @sources, 'there are unit test sources in t/unit');

for my $src (@sources) {
    my $name = basename($src, '.c');
    my $bin = delete $bins{$name};

    subtest $name => sub {
        if (!$bin) {
            fail("build/unit/$name exists (run make unit)");
            return;
        }
        diag("build/unit/$name is older than t/unit/$name.c (run make unit)")
            if -M $bin > -M $src;
        run_binary($bin);
    };
}

# binaries left over from a removed source: run them too, they were tests
for my $name (sort keys %bins) {
    subtest "$name (no source in t/unit)" => sub { run_binary($bins{$name}) };
}

done_testing();


sub run_binary {
    my ($bin) = @_;
    my ($efh, $errfile) = tempfile(UNLINK => 1);
    my ($out, $status, @lines, $planned, $seen, @fail);

    local $ENV{CMOCKA_MESSAGE_OUTPUT} = 'TAP';
    my $cmd = join ' ', map { quotemeta } @wrapper, $bin;
    $out = `$cmd 2>$errfile`;
    $status = $?;
    my $err = do { local $/; <$efh> } // '';

    # cmocka prints one "1..N" per test group; add them up
    $planned = 0;
    $seen = 0;
    @lines = split /\n/, $out;
    for my $i (0 .. $#lines) {
        my $l = $lines[$i];
        if ($l =~ /^1\.\.(\d+)/) {
            $planned += $1;
        }
        elsif ($l =~ /^(not )?ok \d+\s*-?\s*(.*)$/) {
            my ($bad, $what) = ($1, $2);
            $seen++;
            my @why;
            for (my $j = $i + 1; $j <= $#lines && $lines[$j] =~ /^#/; $j++) {
                push @why, $lines[$j];
            }
            ok(!$bad, $what) or diag(join "\n", @why);
        }
    }

    ok($seen > 0, 'the binary reported results');
    is($seen, $planned, 'every planned test reported');
    is($status, 0, 'exit status 0')
        or diag("status " . ($status >> 8) . ", signal " . ($status & 127)
            . "\n$err");
}
