# polyvisor: the screen of the VM $Id as Hyper-V's thumbnail. This text is fixed: it never contains a user value;
# the Id is bound to the param() block and compared as a value (Where-Object), never written into a WQL query.
# Msvm_VirtualSystemManagementService.GetVirtualSystemThumbnailImage takes a reference to the VM's own settings
# (Msvm_VirtualSystemSettingData of type Realized, not a checkpoint's), which only a CIM instance can pass; its size
# is the VM's current mode (Msvm_VideoHead), or $Width x $Height when the VM has no video head (it is not running,
# and the method says so). ImageData is raw RGB 565; it comes back as base64 text.
[CmdletBinding()]
param([string]$Id, [int]$Width, [int]$Height)
$ErrorActionPreference = 'Stop'
$namespace = 'root\virtualization\v2'
$settings = @(Get-CimInstance -Namespace $namespace -ClassName Msvm_VirtualSystemSettingData |
    Where-Object -Property VirtualSystemIdentifier -EQ -Value $Id |
    Where-Object -Property VirtualSystemType -EQ -Value 'Microsoft:Hyper-V:System:Realized')
$heads = @(Get-CimInstance -Namespace $namespace -ClassName Msvm_VideoHead |
    Where-Object -Property SystemName -EQ -Value $Id)
if ($heads.Count -gt 0) {
    $Width = $heads[0].CurrentHorizontalResolution
    $Height = $heads[0].CurrentVerticalResolution
}
$code = $null
$data = $null
if ($settings.Count -eq 1) {
    $service = Get-CimInstance -Namespace $namespace -ClassName Msvm_VirtualSystemManagementService
    $arguments = @{ TargetSystem = $settings[0]; WidthPixels = [uint16]$Width; HeightPixels = [uint16]$Height }
    $result = Invoke-CimMethod -InputObject $service -MethodName GetVirtualSystemThumbnailImage -Arguments $arguments
    $code = $result.ReturnValue
    if ($null -ne $result.ImageData) { $data = [System.Convert]::ToBase64String($result.ImageData) }
}
[pscustomobject]@{ Found = $settings.Count; Width = $Width; Height = $Height; ReturnValue = $code; Data = $data }
