<#
.SYNOPSIS
Put Studio Bridge's REAPER actions (hosts\reaper\scripts\*.py) where REAPER finds them.

.DESCRIPTION
Windows: %APPDATA%\REAPER\Scripts\StudioBridge (REAPER's resource path + Scripts\StudioBridge).
On Linux (~/.config/REAPER) and macOS (~/Library/Application Support/REAPER) use
install-reaper-scripts.sh, which takes the same options.

The copies import their modules from this checkout (its path is written into each).
Safe to run again: unchanged files are left alone. A copy you have edited is never
replaced without -Force (what was installed is recorded, with checksums, in
.studio-bridge-installed in the destination).

.PARAMETER Dest
Install into this folder instead (a portable REAPER: <REAPER folder>\Scripts\StudioBridge).

.PARAMETER Uninstall
Remove what this installed (copies you changed stay unless -Force).

.PARAMETER Force
Also replace (or, with -Uninstall, remove) copies you have changed.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-reaper-scripts.ps1
.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-reaper-scripts.ps1 -Dest D:\REAPER\Scripts\StudioBridge
.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-reaper-scripts.ps1 -Uninstall
#>
[CmdletBinding()]
param(
    [string]$Dest = "",
    [switch]$Force,
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3

$Root = (Resolve-Path (Join-Path $PSScriptRoot "..")).Path  # the checkout
$Source = Join-Path $Root "hosts\reaper\scripts"
$ManifestName = ".studio-bridge-installed"
$Utf8 = New-Object System.Text.UTF8Encoding $false

function Fail([string]$Message) { [Console]::Error.WriteLine("install-reaper-scripts.ps1: $Message"); exit 2 }

# Get-Sum, Install-Into, Uninstall-From: shared with the other DAW installer.
. (Join-Path $PSScriptRoot "lib\manifest.ps1")

# -- REAPER --------------------------------------------------------------------------
if (-not $Dest) { $Dest = Join-Path $env:APPDATA "REAPER\Scripts\StudioBridge" }

if ($Uninstall) {
    Uninstall-From $Dest
    if ((Test-Path -LiteralPath $Dest) -and -not (Get-ChildItem -Force -LiteralPath $Dest)) {
        Remove-Item -LiteralPath $Dest
    }
    exit 0
}

if (-not (Test-Path -LiteralPath $Source)) {
    Fail "no REAPER scripts at $Source (run this from a Studio Bridge checkout)"
}
$Files = @(Get-ChildItem -LiteralPath $Source -Filter "*.py" -File | Sort-Object Name | ForEach-Object { $_.Name })
if ($Files.Count -eq 0) { Fail "no *.py scripts in $Source" }

# Each action imports its modules (hosts.reaper.*) from this checkout: the copy gets
# the checkout's path in its STUDIO_BRIDGE_ROOT line (as a Python string literal).
$Stage = Join-Path ([System.IO.Path]::GetTempPath()) ("studio-bridge-install-" + [guid]::NewGuid())
New-Item -ItemType Directory -Path $Stage | Out-Null
try {
    $literal = $Root.Replace('\', '\\').Replace('"', '\"')
    foreach ($name in $Files) {
        $lines = [System.IO.File]::ReadAllLines((Join-Path $Source $name), $Utf8)
        $out = foreach ($line in $lines) {
            if ($line.StartsWith('STUDIO_BRIDGE_ROOT = ""')) {
                'STUDIO_BRIDGE_ROOT = "' + $literal + '"  # the checkout this was installed from'
            } else { $line }
        }
        [System.IO.File]::WriteAllText((Join-Path $Stage $name), (($out -join "`n") + "`n"), $Utf8)
    }
    Install-Into $Dest $Stage $Files
} finally {
    Remove-Item -Recurse -Force -LiteralPath $Stage
}

Write-Host ""
Write-Host "REAPER scripts are in: $Dest (they use the checkout at $Root)"
Write-Host "To add them to REAPER:"
Write-Host "  1. Options > Preferences > Plug-ins > ReaScript: tick 'Enable Python for use with ReaScript'"
Write-Host "     (set the Python library path if REAPER does not find one, e.g. python311.dll)."
Write-Host "  2. Actions > Show action list... > New action... > Load ReaScript..., and choose these"
Write-Host "     (several at once is fine):"
foreach ($name in $Files) { Write-Host "       $name" }
Write-Host "  3. Give them a shortcut or a toolbar button from the Action List."
Write-Host "The scripts need the daemon: keep 'studio-bridge serve' running."
